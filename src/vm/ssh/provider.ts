import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { MacvmError } from '../../errors.js';
import { createTaggedRuntimeDir, newVmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, CloneOptions, ExitInfo, GuestEndpoint, Image, Provider, RunningVM } from '../types.js';
import { validateSshSettings, type SshProviderSettings, type ValidSshSettings } from './settings.js';

export type { SshProviderSettings } from './settings.js';

export interface SshImage extends Image {
  provider: 'ssh';
  target: ValidSshSettings;
}

export interface SshProviderOptions {
  /** Recorded in vm.json so `macvm vm ls` shows the attachment as detached (the CLI's `vm start`). */
  detached?: boolean;
}

/**
 * The `ssh` provider attaches to a machine that already runs — a lab Mac, a cloud Mac
 * host — so the same specs run there as in a VM. There is no clone and no boot:
 *  - prepare() validates the settings (a pinned host key is required);
 *  - clone() only creates a runtime dir with a vm.json record (provider "ssh", no pid),
 *    so the suite's attachment is tracked like any VM and `macvm gc` can remove the dir;
 *  - boot() returns a RunningVM whose endpoint is the given address and whose stop() does
 *    nothing to the machine. What a suite starts there (drivers, forwards, temp files) is
 *    undone by the MacVM.defer disposers that started it.
 *
 * The image name is free-form: a label for reports ("lab-mini-3", "ec2-mac2"). An empty
 * name becomes "<user>@<host>:<port>". It never selects anything on the machine.
 */
export function createSshProvider(settings: SshProviderSettings, options: SshProviderOptions = {}): Provider {
  return {
    name: 'ssh',
    async prepare(imageRef: string): Promise<SshImage> {
      const target = await validateSshSettings(settings);
      const name = imageLabel(imageRef, target);
      return {
        name,
        provider: 'ssh',
        location: `ssh://${target.user}@${formatHost(target.host)}:${target.port}`,
        os: target.os,
        arch: target.arch,
        ssh: { user: target.user, privateKeyPath: target.privateKeyPath, password: target.password, hostKey: target.hostKey },
        facts: { host: target.host, port: String(target.port), user: target.user },
        target,
      };
    },

    async clone(image: Image, cloneOptions: CloneOptions): Promise<Clone> {
      const sshImage = image as SshImage;
      if (!sshImage.target) throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${image.name}" was not prepared by the ssh provider.`);
      const id = `macvm-ssh-${randomBytes(4).toString('hex')}`;
      const record = newVmRecord({
        id,
        session: cloneOptions.session.id,
        provider: 'ssh',
        image: image.name,
        ssh: { host: sshImage.target.host, port: sshImage.target.port },
        detached: options.detached,
      });
      const runtimeDir = await createTaggedRuntimeDir(record);
      return new SshAttachment(id, sshImage, runtimeDir);
    },
  };
}

/** Builds the provider from macvm.config.ts `settings` (untyped until prepare() validates them). */
export function createSshProviderFromConfig(settings: Record<string, unknown> | undefined, options: SshProviderOptions = {}): Provider {
  return createSshProvider((settings ?? {}) as unknown as SshProviderSettings, options);
}

function imageLabel(imageRef: string, target: ValidSshSettings): string {
  const label = imageRef.trim();
  if (label === '') return `${target.user}@${formatHost(target.host)}:${target.port}`;
  // eslint-disable-next-line no-control-regex
  if (label.length > 200 || /[\u0000-\u001f\u007f]/.test(label)) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', 'An ssh image name is a label for reports: at most 200 printable characters.');
  }
  return label;
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The "clone" of an ssh target: only the runtime dir that tags the attachment. */
class SshAttachment implements Clone {
  readonly bootsAgainRefusal = 'the ssh provider reaches a machine it did not start, so it cannot boot it again';
  private destroyed = false;
  private running?: SshRunningVM;

  constructor(
    readonly id: string,
    readonly image: SshImage,
    readonly runtimeDir: string,
  ) {}

  async boot(_options: BootOptions): Promise<RunningVM> {
    if (this.destroyed) throw new MacvmError('MACVM_VM_STOPPED', `Attachment ${this.id} was destroyed.`);
    this.running ??= new SshRunningVM(this, { host: this.image.target.host, port: this.image.target.port });
    return this.running;
  }

  /** Removes the runtime dir; the machine itself is never touched. Idempotent. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    await this.running?.stop();
    await rm(this.runtimeDir, { recursive: true, force: true });
  }
}

class SshRunningVM implements RunningVM {
  readonly pid = undefined;
  readonly consoleLogPath = undefined;
  readonly exited: Promise<ExitInfo>;
  private endExited!: (exit: ExitInfo) => void;

  constructor(
    readonly clone: Clone,
    private readonly address: GuestEndpoint,
  ) {
    // The machine does not "exit" because of us: this resolves only when the suite lets go
    // of it (stop), so crash watches never fire for an ssh target.
    this.exited = new Promise((resolve) => (this.endExited = resolve));
  }

  async endpoint(): Promise<GuestEndpoint> {
    return { ...this.address };
  }

  /** Ends the attachment only; nothing on the machine is shut down. */
  async stop(): Promise<void> {
    this.endExited({ code: null, signal: null });
  }
}
