import { Client, type AuthenticationType, type ConnectConfig } from 'ssh2';
import { MacvmError, messageOf } from '../errors.js';
import type { HostKeyCheck } from './host-key.js';

export type Auth = Pick<ConnectConfig, 'username' | 'privateKey' | 'password'>;

export interface ConnectAttempt {
  host: string;
  port: number;
  /** For messages only; the user that logs in is `auth.username`. */
  user: string;
  auth: Auth;
  hostKey: HostKeyCheck;
  budgetMs: number;
  keepaliveIntervalMs: number;
  /** Ends the attempt early (the VM's deadline), failing with the signal's reason. */
  signal?: AbortSignal;
}

/** One TCP connect + SSH handshake + authentication, bounded by `budgetMs` and the signal. */
export function connectOnce(attempt: ConnectAttempt): Promise<Client> {
  const { host, port, hostKey, budgetMs, signal } = attempt;
  const client = new Client();
  return new Promise<Client>((resolve, reject) => {
    let settled = false;
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      client.removeListener('ready', onReady);
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
    };
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      // Swallow late errors from the dying connection.
      client.on('error', () => {});
      client.destroy();
      reject(error);
    };
    const onReady = (): void => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(client);
    };
    // A refused host key surfaces from ssh2 as a vague handshake error: report the refusal instead.
    const onError = (error: Error): void => fail(hostKey.refusal ?? error);
    const onClose = (): void => fail(hostKey.refusal ?? new Error('the server closed the connection before the SSH handshake finished'));
    const onAbort = (): void => fail(signal?.reason ?? new Error('aborted'));
    const timer = setTimeout(() => fail(new Error(`no SSH handshake within ${budgetMs} ms`)), budgetMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    client.once('ready', onReady);
    client.on('error', onError);
    client.once('close', onClose);
    try {
      client.connect({
        host,
        port,
        ...attempt.auth,
        // Straight to the methods we have. ssh2's default list starts with 'none', a round trip
        // that only asks which methods the server takes; a refused method says that too.
        authHandler: authMethods(attempt.auth),
        // Our own timer bounds the attempt; ssh2's must not fire first with a vaguer error.
        readyTimeout: budgetMs + 1_000,
        keepaliveInterval: attempt.keepaliveIntervalMs,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => hostKey.verify(key),
      });
    } catch (error) {
      // ssh2 throws synchronously for a key it cannot parse; no retry will fix that.
      fail(
        new MacvmError('MACVM_SSH_CONNECT_FAILED', `Cannot use the SSH client key for ${attempt.user}@${host}:${port}: ${messageOf(error)}.`, {
          hint: 'privateKeyPath must be an unencrypted OpenSSH or PEM private key.',
          cause: error,
        }),
      );
    }
  });
}

/** The auth methods to try, in ssh2's own order, without its leading 'none'. */
export function authMethods(auth: Auth): AuthenticationType[] {
  const methods: AuthenticationType[] = [];
  if (auth.password !== undefined) methods.push('password');
  if (auth.privateKey !== undefined) methods.push('publickey');
  return methods;
}

/** ssh2 marks a rejected login this way; retrying the same credentials cannot help. */
export function isAuthFailure(error: Error): boolean {
  return (error as { level?: string }).level === 'client-authentication';
}
