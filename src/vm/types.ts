/**
 * The lifecycle, as types (see DESIGN.md):
 *
 *   Provider.prepare(imageRef)        -> Image      resolved, verified, cached
 *   Provider.clone(image, {session})  -> Clone      copy-on-write, O(1) in disk size
 *   Clone.boot({cpus, memory, ...})   -> RunningVM  a supervised child process with a console log
 *   startMacVM() runs ready(wait)     -> MacVM      the object a spec sees
 *   MacVM.restart()                   -> RunningVM.stop(), Clone.boot() again, ready(wait)
 *                                        (clones with bootsAgain; the disk is kept)
 *   MacVM.dispose()                   -> stops the VM, deletes the clone (idempotent)
 *
 * Providers implement Provider/Clone/RunningVM; everything above them (SSH session, wait
 * strategies, MacVM) is the facade in src/machine/, the one deadline is src/shared/deadline.ts.
 */
import type { VcpuTimes } from '../shared/cpu-clock.js';
import type { Deadline } from '../shared/deadline.js';
import type { GuestArch, GuestOS, SshCredentials } from '../shared/guest.js';

export type { GuestArch, GuestOS, SshCredentials } from '../shared/guest.js';

export type ProviderName = 'qemu' | 'vz' | 'tart' | 'ssh' | 'orchard';

export interface Image {
  /** Name as users write it: `linux-test`, `sonoma-xcode`. */
  name: string;
  provider: ProviderName;
  /** Directory (or provider-specific locator) that holds the image. */
  location: string;
  os: GuestOS;
  arch: GuestArch;
  ssh: SshCredentials;
  /** Free-form facts recorded at build time (kernel version, OS build, ...). */
  facts: Record<string, string>;
}

/** The runner's identity; every clone and VM process carries it (a file in its runtime dir). */
export interface SessionInfo {
  id: string;
  /** PID of the process that owns the session (the test runner). */
  pid: number;
}

export interface CloneOptions {
  session: SessionInfo;
  /** Disk size in GiB for the clone; providers grow the overlay/disk if larger than the base. */
  diskGiB?: number;
  deadline: Deadline;
}

/**
 * What the guest's network reaches. 'none': nothing but what the spec exposes (exposeHostPort,
 * an SSH reverse forward) — no host services, no internet. 'nat': outbound NAT through the
 * host; under qemu's user-mode networking that includes the host's loopback services (10.0.2.2
 * is an alias of the host's 127.0.0.1, which QEMU 7.2 cannot turn off).
 */
export type NetworkMode = 'nat' | 'none';
export const NETWORK_MODES: readonly NetworkMode[] = ['nat', 'none'];

export interface BootOptions {
  cpus: number;
  memoryMiB: number;
  /** Attach a display device (needed for screenshots on qemu). */
  display: boolean;
  /** The guest's network; undefined means the provider's default (see Provider.networkModes). */
  network?: NetworkMode;
  deadline: Deadline;
}

export interface Clone {
  readonly id: string;
  readonly image: Image;
  /** Private runtime directory of this clone (0700): disk overlay, sockets, console log, session tag. */
  readonly runtimeDir: string;
  boot(options: BootOptions): Promise<RunningVM>;
  /**
   * boot() may be called again once the running VM has stopped, and the guest then starts from
   * the disk as it left it (vm.restart()). Absent where a machine is not the clone's to boot (ssh)
   * or booting again would make a new VM (orchard).
   */
  readonly bootsAgain?: boolean;
  /** Where boot() cannot run again: why, in words vm.restart()'s refusal can quote. */
  readonly bootsAgainRefusal?: string;
  /** Deletes the clone and its runtime dir. Idempotent. */
  destroy(): Promise<void>;
}

/** Where the SSH server of a booted guest answers. */
export interface GuestEndpoint {
  host: string;
  port: number;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface RunningVM {
  readonly clone: Clone;
  /** PID of the supervised VM process (qemu-system, tart run, vmhost); undefined for ssh. */
  readonly pid: number | undefined;
  /** Path of the serial console / VM log file. */
  readonly consoleLogPath: string | undefined;
  /** Resolves when the VM process exits, for whatever reason. */
  readonly exited: Promise<ExitInfo>;
  /** Finds the guest's SSH endpoint (forwarded port, DHCP lease, tart ip, ...). */
  endpoint(deadline: Deadline): Promise<GuestEndpoint>;
  /** The VM display as PNG, where the provider can take it from the host side. */
  screenshot?(): Promise<Buffer>;
  /**
   * The vCPU threads' CPU time as the host counts it (src/shared/cpu-clock.ts), where the
   * provider can see them (qemu on Linux); undefined when it cannot be read.
   */
  cpuClock?(): Promise<VcpuTimes | undefined>;
  /**
   * Stops the VM: graceful power-down within `gracefulMs`, then a hard stop.
   * Idempotent; resolves once the VM process is gone.
   */
  stop(options?: { gracefulMs?: number }): Promise<void>;
}

export interface Provider {
  readonly name: ProviderName;
  /**
   * The network modes this provider can give a guest, its default first (qemu: 'none', 'nat').
   * A provider without it has one network it cannot change, and refuses an explicit `network`.
   */
  readonly networkModes?: readonly NetworkMode[];
  /** Resolves an image reference to a verified local image (building or pulling only where the provider does so). */
  prepare(imageRef: string): Promise<Image>;
  clone(image: Image, options: CloneOptions): Promise<Clone>;
}
