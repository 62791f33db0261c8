import { readFile } from 'node:fs/promises';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import type { Deadline } from '../shared/deadline.js';
import type { SshCredentials } from '../shared/guest.js';
import { execOverSsh } from './exec.js';
import { ReverseForwards, openLocalForward } from './forwards.js';
import { createHostKeyCheck } from './host-key.js';
import { buildShellCommand } from './shell-quote.js';
import { downloadPath, readRemoteFile, uploadPath, writeRemoteFile, type TransferChannel } from './transfer.js';
import type { ExecOptions, ExecResult, GuestSession, PortForward, ShellTemplate } from './types.js';

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
 * Opens a GuestSession, retrying while the guest boots. Through QEMU's user-mode
 * forwarding a port whose server is not up yet accepts and then hangs or resets,
 * so every attempt has a short budget of its own. A host-key refusal or an
 * authentication failure is final: retrying cannot fix either.
 */
export async function connectGuest(options: ConnectOptions): Promise<GuestSession> {
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
    const budget = deadline ? Math.min(connectTimeoutMs, Math.max(1, deadline.remainingMs())) : connectTimeoutMs;
    try {
      const client = await connectOnce(options, auth, budget);
      options.onAttempt?.(attempt);
      return new SshGuestSession(client, host, port);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      if (deadline && (deadline.expired || deadline.signal.aborted)) {
        options.onAttempt?.(attempt, failure);
        throw deadline.error();
      }
      options.onAttempt?.(attempt, failure);
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

type Auth = Pick<ConnectConfig, 'username' | 'privateKey' | 'password'>;

async function loadAuth(target: string, credentials: SshCredentials): Promise<Auth> {
  if (!credentials.privateKeyPath && credentials.password === undefined) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `No SSH credentials for ${credentials.user}@${target}: give a privateKeyPath or a password.`);
  }
  const auth: Auth = { username: credentials.user };
  if (credentials.password !== undefined) auth.password = credentials.password;
  if (credentials.privateKeyPath) {
    try {
      auth.privateKey = await readFile(credentials.privateKeyPath);
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

/** One TCP connect + SSH handshake + authentication, bounded by `budgetMs` and the deadline. */
function connectOnce(options: ConnectOptions, auth: Auth, budgetMs: number): Promise<Client> {
  const check = createHostKeyCheck(`${options.host}:${options.port}`, options.credentials.hostKey, options.insecureAcceptAnyHostKey);
  const client = new Client();
  const signal = options.deadline?.signal;
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
    const onError = (error: Error): void => fail(check.refusal ?? error);
    const onClose = (): void => fail(check.refusal ?? new Error('the server closed the connection before the SSH handshake finished'));
    const onAbort = (): void => fail(signal?.reason ?? new Error('aborted'));
    const timer = setTimeout(() => fail(new Error(`no SSH handshake within ${budgetMs} ms`)), budgetMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    client.once('ready', onReady);
    client.on('error', onError);
    client.once('close', onClose);
    try {
      client.connect({
        host: options.host,
        port: options.port,
        ...auth,
        // Our own timer bounds the attempt; ssh2's must not fire first with a vaguer error.
        readyTimeout: budgetMs + 1_000,
        keepaliveInterval: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => check.verify(key),
      });
    } catch (error) {
      // ssh2 throws synchronously for a key it cannot parse; no retry will fix that.
      fail(
        new MacvmError('MACVM_SSH_CONNECT_FAILED', `Cannot use the SSH client key for ${options.credentials.user}@${options.host}:${options.port}: ${messageOf(error)}.`, {
          hint: 'privateKeyPath must be an unencrypted OpenSSH or PEM private key.',
          cause: error,
        }),
      );
    }
  });
}

function isAuthFailure(error: Error): boolean {
  return (error as { level?: string }).level === 'client-authentication';
}

/**
 * Session channels a connection may hold at once. OpenSSH allows 10 (MaxSessions);
 * SFTP takes one, and a margin stays for wait strategies, so extra commands queue
 * here instead of failing with "open failed".
 */
const MAX_CONCURRENT_COMMANDS = 8;

class SshGuestSession implements GuestSession {
  readonly sh: ShellTemplate;
  private closeRequested = false;
  private connectionEnded = false;
  private endReason: string | undefined;
  private closing: Promise<void> | undefined;
  private sftpChannel: Promise<SFTPWrapper> | undefined;
  private readonly channels = new Set<ClientChannel>();
  private readonly forwards = new Set<PortForward>();
  private readonly reverse: ReverseForwards;
  private running = 0;
  private readonly queue: Array<() => void> = [];
  private readonly transfers: TransferChannel;

  constructor(
    private readonly client: Client,
    readonly host: string,
    readonly port: number,
  ) {
    this.sh = this.shWith({});
    this.reverse = new ReverseForwards(client);
    client.on('error', (error: Error) => {
      this.endReason ??= error.message;
    });
    client.on('close', () => {
      this.connectionEnded = true;
      this.endReason ??= 'the server closed the connection';
      for (const forward of this.forwards) void forward.close();
    });
    this.transfers = {
      sftp: () => this.sftp(),
      run: async (command) => {
        await this.exec(command);
      },
    };
  }

  get closed(): boolean {
    return this.closeRequested || this.connectionEnded;
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    this.assertOpen(`run \`${command}\``);
    await this.acquireSlot();
    try {
      this.assertOpen(`run \`${command}\``);
      return await execOverSsh({
        context: {
          client: this.client,
          track: (channel) => {
            this.channels.add(channel);
            return () => this.channels.delete(channel);
          },
          endedReason: () => (this.closeRequested ? 'the session was closed' : this.endReason),
        },
        command,
        options,
      });
    } finally {
      this.releaseSlot();
    }
  }

  shWith(options: ExecOptions): ShellTemplate {
    // The literal parts are shell source, so they are taken raw: sh`printf 'a\n'`
    // hands printf a backslash-n, exactly as typed in a terminal.
    return (strings, ...values) => {
      try {
        return this.exec(buildShellCommand(strings.raw, values), options);
      } catch (error) {
        return Promise.reject(error);
      }
    };
  }

  async upload(localPath: string, remotePath: string): Promise<void> {
    this.assertOpen(`upload ${localPath}`);
    await uploadPath(this.transfers, localPath, remotePath);
  }

  async download(remotePath: string, localPath: string): Promise<void> {
    this.assertOpen(`download ${remotePath}`);
    await downloadPath(this.transfers, remotePath, localPath);
  }

  async writeFile(remotePath: string, data: string | Buffer, options: { mode?: number } = {}): Promise<void> {
    this.assertOpen(`write ${remotePath}`);
    await writeRemoteFile(this.transfers, remotePath, data, options.mode);
  }

  async readFile(remotePath: string): Promise<Buffer> {
    this.assertOpen(`read ${remotePath}`);
    return readRemoteFile(this.transfers, remotePath);
  }

  async forwardGuestPort(guestPort: number, options: { guestHost?: string; localPort?: number } = {}): Promise<PortForward> {
    this.assertOpen(`forward guest port ${guestPort}`);
    assertPort('guestPort', guestPort, false);
    return this.remember(await openLocalForward(this.client, guestPort, options));
  }

  async forwardHostPort(hostPort: number, options: { guestPort?: number; hostHost?: string } = {}): Promise<PortForward> {
    this.assertOpen(`forward host port ${hostPort}`);
    assertPort('hostPort', hostPort, false);
    if (options.guestPort !== undefined) assertPort('guestPort', options.guestPort, true);
    return this.remember(await this.reverse.open(hostPort, options));
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closeRequested = true;
    await Promise.all([...this.forwards].map((forward) => forward.close().catch(() => {})));
    this.forwards.clear();
    for (const channel of this.channels) channel.close();
    if (this.connectionEnded) return;
    await new Promise<void>((resolve) => {
      const fallback = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2_000);
      fallback.unref();
      this.client.once('close', () => {
        clearTimeout(fallback);
        resolve();
      });
      this.client.end();
    });
  }

  private remember(forward: PortForward): PortForward {
    // A forward opened while close() ran must not outlive the session.
    if (this.closeRequested) {
      void forward.close();
      this.assertOpen('forward a port');
    }
    this.forwards.add(forward);
    const close = forward.close.bind(forward);
    return {
      port: forward.port,
      close: async () => {
        this.forwards.delete(forward);
        await close();
      },
    };
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpChannel ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((error, sftp) => {
        if (error) {
          this.sftpChannel = undefined;
          reject(
            new MacvmError('MACVM_TRANSFER_FAILED', `The guest did not start its SFTP subsystem: ${messageOf(error)}.`, {
              hint: 'The SSH server needs an sftp subsystem (OpenSSH: Subsystem sftp /usr/lib/openssh/sftp-server; dropbear finds sftp-server on its own).',
              cause: error,
            }),
          );
          return;
        }
        // A broken SFTP channel is reopened on next use; its error must not crash the process.
        const forget = (): void => {
          this.sftpChannel = undefined;
        };
        sftp.once('close', forget);
        sftp.on('error', forget);
        resolve(sftp);
      });
    });
    return this.sftpChannel;
  }

  private assertOpen(what: string): void {
    if (this.closeRequested) {
      throw new MacvmError('MACVM_SESSION_CLOSED', `Cannot ${what}: the session to ${this.host}:${this.port} was closed.`, {
        hint: 'Use the session only before close() (or before the VM is disposed).',
      });
    }
    if (this.connectionEnded) {
      throw new MacvmError('MACVM_SESSION_CLOSED', `Cannot ${what}: the SSH connection to ${this.host}:${this.port} ended (${this.endReason ?? 'closed by the server'}).`, {
        hint: 'The VM may have stopped or rebooted (a MacVM then reports MACVM_VM_STOPPED with its console tail); a suite cannot reconnect its VM, so look at the console log and rerun.',
      });
    }
  }

  private async acquireSlot(): Promise<void> {
    if (this.running < MAX_CONCURRENT_COMMANDS) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running--;
  }
}

function assertPort(name: string, port: number, zeroAllowed: boolean): void {
  if (!Number.isInteger(port) || port < (zeroAllowed ? 0 : 1) || port > 65_535) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `${name} must be a TCP port (${zeroAllowed ? 0 : 1}–65535), got ${port}.`);
  }
}
