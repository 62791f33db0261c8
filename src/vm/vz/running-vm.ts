import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { processStartTime } from '../../util/process-identity.js';
import type { Deadline } from '../deadline.js';
import { writeVmRecord, type VmRecord } from '../runtime-dir.js';
import type { BootOptions, Clone, ExitInfo, GuestEndpoint, RunningVM } from '../types.js';
import { findGuestAddress, type AddressLookup } from './address.js';
import { readBundleConfig, writeBundleConfig } from './bundle-config.js';
import { VmhostClient } from './vmhost-client.js';
import { vmSpecFromBundle } from './vm-spec.js';

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
}

/** Spawns the clone's vmhost, gives the clone a fresh machine identifier, and starts the VM. */
export async function bootVz(input: BootVzInput): Promise<VzRunningVM> {
  const { clone, bundle, boot } = input;
  return boot.deadline.run('boot', async () => {
    const client = await VmhostClient.spawn({
      command: input.vmhost.command,
      args: input.vmhost.args,
      env: input.vmhost.env,
      cwd: clone.runtimeDir,
      logPath: join(clone.runtimeDir, 'vmhost.log'),
    });
    const pid = client.pid!;
    const record: VmRecord = { ...input.record, pid, pidStartTime: await processStartTime(pid), cpus: boot.cpus, memoryMiB: boot.memoryMiB };
    await writeVmRecord(clone.runtimeDir, record);
    const vm = new VzRunningVM(clone, record, client, join(clone.runtimeDir, 'console.log'), '', input.address);
    try {
      // A fresh VZMacMachineIdentifier per clone: two VMs with one ECID confuse iCloud/MDM and the guest.
      const config = await readBundleConfig(bundle);
      const ecid = await client.request<string>({ cmd: 'newMachineIdentifier' });
      await writeBundleConfig(bundle, { ...config, ecid });
      const spec = vmSpecFromBundle(bundle, { ...config, ecid }, { cpus: boot.cpus, memoryMiB: boot.memoryMiB, consoleLogPath: vm.consoleLogPath, memoryBalloon: input.memoryBalloon });
      vm.mac = config.macAddress;
      await client.request({ cmd: 'start', spec });
      return vm;
    } catch (error) {
      await client.close(2_000);
      throw error;
    }
  });
}

/** A VM owned by one vmhost process. */
export class VzRunningVM implements RunningVM {
  readonly exited: Promise<ExitInfo>;
  private stopping?: Promise<void>;
  private readonly stoppedEvent: Promise<void>;

  constructor(
    readonly clone: Clone,
    private record: VmRecord,
    private readonly client: VmhostClient,
    readonly consoleLogPath: string,
    public mac: string,
    private readonly address?: AddressLookup,
  ) {
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
    this.stopping ??= this.stopInOrder(options.gracefulMs ?? 10_000);
    return this.stopping;
  }

  /** Ask the guest (requestStop), then a hard VZ stop, then end vmhost (which stops on EOF too). */
  private async stopInOrder(gracefulMs: number): Promise<void> {
    if (gracefulMs > 0 && this.client.lastState === 'running') {
      try {
        await this.client.request({ cmd: 'requestStop' });
        await within(this.stoppedEvent, gracefulMs);
      } catch {
        // the guest would not be asked; the hard stop below handles it
      }
    }
    if (this.client.lastState !== 'stopped') await this.client.request({ cmd: 'stop' }).catch(() => {});
    const exit = await this.client.close(10_000);
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
