import { readFileSync } from 'node:fs';
import type { Client } from 'ssh2';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import type { Deadline } from '../shared/deadline.js';
import type { SshCredentials } from '../shared/guest.js';
import { connectOnce, isAuthFailure, type Auth } from './connect-attempt.js';
import { createHostKeyCheck } from './host-key.js';

export interface ConnectOptions {
  host: string;
  port: number;
  credentials: SshCredentials;
  /** The VM's one deadline: attempts continue until it passes, then its own error is thrown. */
  deadline?: Deadline;
  /** Budget of one attempt (TCP connect + SSH handshake + auth); default 5000. */
  connectTimeoutMs?: number;
  /** Pause between attempts; default 250. */
  retryIntervalMs?: number;
  /** SSH keepalive period, so a dead VM is noticed; default 15000 (0 disables). */
  keepaliveIntervalMs?: number;
  /** Called after every attempt: with the error when it failed, without when it connected. */
  onAttempt?: (attempt: number, error?: Error) => void;
  /** Attempts allowed without a deadline (with one, only the deadline limits them); default 3. */
  maxAttempts?: number;
  /**
   * Accept whatever host key the server presents when none is pinned. Only for
   * throwaway machines: it gives up protection against talking to the wrong host.
   */
  insecureAcceptAnyHostKey?: boolean;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_RETRY_INTERVAL_MS = 250;
const DEFAULT_KEEPALIVE_MS = 15_000;
const DEFAULT_ATTEMPTS_WITHOUT_DEADLINE = 3;

/**
 * An authenticated SSH connection to the guest, retrying while the guest boots.
 * Through QEMU's user-mode forwarding a port whose server is not up yet accepts and
 * then hangs or resets, so every attempt has a short budget of its own. A host-key
 * refusal or an authentication failure is final: retrying cannot fix either.
 */
export async function connectSsh(options: ConnectOptions): Promise<Client> {
  const { host, port, credentials, deadline } = options;
  const target = `${host}:${port}`;
  // Checked before any attempt so a malformed pinned key is reported as such, once.
  createHostKeyCheck(target, credentials.hostKey, options.insecureAcceptAnyHostKey);
  const auth = await loadAuth(target, credentials);
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const retryIntervalMs = options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
  const maxAttempts = deadline ? Number.POSITIVE_INFINITY : (options.maxAttempts ?? DEFAULT_ATTEMPTS_WITHOUT_DEADLINE);

  for (let attempt = 1; ; attempt++) {
    if (deadline?.expired || deadline?.signal.aborted) throw deadline.error();
    const budgetMs = deadline ? Math.min(connectTimeoutMs, Math.max(1, deadline.remainingMs())) : connectTimeoutMs;
    try {
      const client = await connectOnce({
        host,
        port,
        user: credentials.user,
        auth,
        // A fresh check per attempt: it remembers the refusal of its own handshake only.
        hostKey: createHostKeyCheck(target, credentials.hostKey, options.insecureAcceptAnyHostKey),
        budgetMs,
        keepaliveIntervalMs: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
        signal: deadline?.signal,
      });
      options.onAttempt?.(attempt);
      return client;
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      options.onAttempt?.(attempt, failure);
      if (deadline && (deadline.expired || deadline.signal.aborted)) throw deadline.error();
      if (isMacvmError(failure)) throw failure;
      if (isAuthFailure(failure)) {
        throw new MacvmError('MACVM_SSH_CONNECT_FAILED', `${credentials.user}@${target} refused our credentials: ${failure.message}.`, {
          hint: 'Check the user name and that the client key (or password) is the one the guest expects (its authorized_keys).',
          details: { host, port, user: credentials.user, attempts: attempt },
          cause: failure,
        });
      }
      if (attempt >= maxAttempts) {
        throw new MacvmError('MACVM_SSH_CONNECT_FAILED', `Could not connect to ${credentials.user}@${target} after ${attempt} attempt(s): ${failure.message}.`, {
          hint: deadline ? undefined : 'Is the VM running and its SSH server up? Pass a deadline to keep retrying while it boots.',
          details: { host, port, user: credentials.user, attempts: attempt, lastError: failure.message },
          cause: failure,
        });
      }
      if (deadline) await deadline.sleep(retryIntervalMs);
      else await new Promise((resolve) => setTimeout(resolve, retryIntervalMs));
    }
  }
}

async function loadAuth(target: string, credentials: SshCredentials): Promise<Auth> {
  if (!credentials.privateKeyPath && credentials.password === undefined) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `No SSH credentials for ${credentials.user}@${target}: give a privateKeyPath or a password.`);
  }
  const auth: Auth = { username: credentials.user };
  if (credentials.password !== undefined) auth.password = credentials.password;
  if (credentials.privateKeyPath) {
    try {
      // Sync: a small local file, read on the ready chain's critical path, where an async read's
      // thread hops each wait for a CPU on a loaded host.
      auth.privateKey = readFileSync(credentials.privateKeyPath);
    } catch (error) {
      throw new MacvmError('MACVM_SSH_CONNECT_FAILED', `Cannot read the SSH client key ${credentials.privateKeyPath}: ${messageOf(error)}.`, {
        hint: 'The image metadata points at a key that is gone; rebuild the image or fix privateKeyPath.',
        details: { privateKeyPath: credentials.privateKeyPath },
        cause: error,
      });
    }
  }
  return auth;
}
