import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { processStartTime } from '../../util/process-identity.js';
import type { Deadline } from '../../shared/deadline.js';
import { writeVmRecord, type VmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, ExitInfo, GuestEndpoint, RunningVM } from '../types.js';
import { findGuestAddress, type AddressLookup } from './address.js';
import { readBundleConfig, writeBundleConfig } from './bundle-config.js';
import { endChild, spawnDetachedVmhost, stopDetachedVmhost, vmhostLogPath } from './detached-vmhost.js';
import { VmhostClient } from './vmhost-client.js';
import { vmSpecFromBundle } from './vm-spec.js';
import { DEFAULTS } from '../defaults.js';

export interface VmhostCommandLine {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

export interface BootVzInput {
  clone: Clone;
  bundle: string;
  record: VmRecord;
  vmhost: VmhostCommandLine;
  boot: BootOptions;
  memoryBalloon: boolean;
  address?: AddressLookup;
  /**
   * Keep the VM running after this process exits (`macvm vm start`): vmhost is spawned as its
   * own session in listen mode and reached through its socket (detached-vmhost.ts).
   */
  detached?: boolean;
  /**
   * The clone boots again (vm.restart()): it keeps the machine identifier its first boot gave
   * it, as a Mac keeps its hardware across a reboot.
   */
  again?: boolean;
}

/** How this process holds its vmhost: the stdio pipes of a child, or a detached one's socket. */
type VmhostHandle = { detached: false; client: VmhostClient } | { detached: true; client: VmhostClient<void>; child: ChildProcess };

/** Spawns the clone's vmhost, gives the clone a fresh machine identifier on its first boot, and starts the VM. */
export async function bootVz(input: BootVzInput): Promise<VzRunningVM> {
  const { clone, bundle, boot } = input;
  return boot.deadline.run('boot', async (signal) => {
    const handle = await spawnVmhost(input);
    // Past the deadline, deadline.run has already failed the boot and nobody will stop this VM:
    // end vmhost now (a detached one would otherwise live on; a piped one stops with us anyway).
    const onAbort = () => void closeVmhost(handle);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      const pid = handle.client.pid!;
      const record: VmRecord = {
        ...input.record,
        ...(input.detached ? { detached: true } : {}),
        pid,
        pidStartTime: await processStartTime(pid),
        cpus: boot.cpus,
        memoryMiB: boot.memoryMiB,
      };
      await writeVmRecord(clone.runtimeDir, record);
      const vm = new VzRunningVM(clone, record, handle, join(clone.runtimeDir, 'console.log'), '', input.address);
      try {
        // A fresh VZMacMachineIdentifier per clone: two VMs with one ECID confuse iCloud/MDM and the guest.
        // Made at the clone's first boot and kept by later ones: a restarted Mac is the same machine.
        const config = await readBundleConfig(bundle);
        const ecid = input.again && config.ecid ? config.ecid : await handle.client.request<string>({ cmd: 'newMachineIdentifier' });
        if (ecid !== config.ecid) await writeBundleConfig(bundle, { ...config, ecid });
        const spec = vmSpecFromBundle(bundle, { ...config, ecid }, { cpus: boot.cpus, memoryMiB: boot.memoryMiB, consoleLogPath: vm.consoleLogPath, memoryBalloon: input.memoryBalloon });
        vm.mac = config.macAddress;
        await handle.client.request({ cmd: 'start', spec });
        return vm;
      } catch (error) {
        await closeVmhost(handle);
        throw error;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  });
}

async function spawnVmhost(input: BootVzInput): Promise<VmhostHandle> {
  const { runtimeDir } = input.clone;
  if (input.detached) {
    const detached = await spawnDetachedVmhost({ ...input.vmhost, runtimeDir, deadline: input.boot.deadline });
    return { detached: true, client: detached.client, child: detached.child };
  }
  const client = await VmhostClient.spawn({ ...input.vmhost, cwd: runtimeDir, logPath: vmhostLogPath(runtimeDir) });
  return { detached: false, client };
}

/** Ends a vmhost whose boot failed: EOF on stdin, or SIGTERM for a detached one (no VM may linger). */
async function closeVmhost(handle: VmhostHandle): Promise<void> {
  if (!handle.detached) {
    await handle.client.close(2_000);
    return;
  }
  await endChild(handle.child, handle.client.exited);
  await handle.client.close(1_000);
}

/** A VM owned by one vmhost process, spawned by this process (piped, or detached). */
export class VzRunningVM implements RunningVM {
  readonly exited: Promise<ExitInfo>;
  private stopping?: Promise<void>;
  private readonly stoppedEvent: Promise<void>;

  constructor(
    readonly clone: Clone,
    private record: VmRecord,
    private readonly handle: VmhostHandle,
    readonly consoleLogPath: string,
    public mac: string,
    private readonly address?: AddressLookup,
  ) {
    const client = handle.client;
    this.exited = client.exited;
    this.stoppedEvent = Promise.race([client.waitFor((e) => e.event === 'stopped').then(() => undefined), client.exited.then(() => undefined)]);
  }

  get pid(): number | undefined {
    return this.record.pid;
  }

  async endpoint(deadline: Deadline): Promise<GuestEndpoint> {
    return deadline.run('address', async () => {
      const host = await findGuestAddress(this.mac, deadline, this.stoppedEvent, this.address);
      this.record = { ...this.record, ssh: { host, port: 22 } };
      await writeVmRecord(this.clone.runtimeDir, this.record);
      return { host, port: 22 };
    });
  }

  stop(options: { gracefulMs?: number } = {}): Promise<void> {
    this.stopping ??= this.stopInOrder(options.gracefulMs ?? DEFAULTS.stopGracefulMs);
    return this.stopping;
  }

  /** Ask the guest (requestStop), then a hard VZ stop, then end vmhost (which stops on EOF too). */
  private async stopInOrder(gracefulMs: number): Promise<void> {
    const { handle } = this;
    if (handle.detached) {
      try {
        await stopDetachedVmhost({ pid: this.record.pid!, pidStartTime: this.record.pidStartTime, runtimeDir: this.clone.runtimeDir, exited: this.exited, client: handle.client, vmId: this.clone.id }, gracefulMs);
      } finally {
        await handle.client.close(1_000);
      }
      return;
    }
    const client = handle.client;
    if (gracefulMs > 0 && client.lastState === 'running') {
      try {
        await client.request({ cmd: 'requestStop' });
        await within(this.stoppedEvent, gracefulMs);
      } catch {
        // the guest would not be asked; the hard stop below handles it
      }
    }
    if (client.lastState !== 'stopped') await client.request({ cmd: 'stop' }).catch(() => {});
    const exit = await client.close(10_000);
    if (exit.code === null && exit.signal === null) {
      throw new MacvmError('MACVM_STOP_FAILED', `vmhost (pid ${this.record.pid}) for ${this.clone.id} did not exit.`);
    }
  }
}

async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
