import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { MacvmError, messageOf } from '../errors.js';
import { CommandSlots } from './command-slots.js';
import { connectSsh, type ConnectOptions } from './connect.js';
import { execOverSsh, type ExecContext } from './exec.js';
import { ReverseForwards, openLocalForward } from './forwards.js';
import { shellTemplate } from './shell-quote.js';
import { downloadPath, readRemoteFile, uploadPath, writeRemoteFile, type TransferChannel } from './transfer.js';
import type { ExecOptions, ExecResult, GuestSession, HostForwardOptions, PortForward, ShellTemplate } from './types.js';

export type { ConnectOptions } from './connect.js';

/** Opens a GuestSession: connects (see connect.ts for retries, host-key pinning and auth), then wraps the connection. */
export async function connectGuest(options: ConnectOptions): Promise<GuestSession> {
  return new SshGuestSession(await connectSsh(options), options.host, options.port);
}

/**
 * The session over one authenticated connection: commands (queued to what the
 * server allows at once), files over one shared SFTP channel, and port forwards,
 * all ended by close() or by the connection going away.
 */
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
  private readonly slots = new CommandSlots();
  private readonly transfers: TransferChannel;
  private readonly execContext: ExecContext;

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
    this.execContext = {
      client,
      track: (channel) => {
        this.channels.add(channel);
        return () => this.channels.delete(channel);
      },
      endedReason: () => (this.closeRequested ? 'the session was closed' : this.endReason),
    };
  }

  get closed(): boolean {
    return this.closeRequested || this.connectionEnded;
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    this.assertOpen(`run \`${command}\``);
    await this.slots.acquire();
    try {
      this.assertOpen(`run \`${command}\``);
      return await execOverSsh({ context: this.execContext, command, options });
    } finally {
      this.slots.release();
    }
  }

  shWith(options: ExecOptions): ShellTemplate {
    return shellTemplate((command) => this.exec(command, options));
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

  async forwardHostPort(hostPort: number, options: HostForwardOptions = {}): Promise<PortForward> {
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
}

function assertPort(name: string, port: number, zeroAllowed: boolean): void {
  if (!Number.isInteger(port) || port < (zeroAllowed ? 0 : 1) || port > 65_535) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `${name} must be a TCP port (${zeroAllowed ? 0 : 1}–65535), got ${port}.`);
  }
}
