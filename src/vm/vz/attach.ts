import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import type { VmRecord } from '../runtime-dir.js';
import type { Clone, ExitInfo, GuestEndpoint, RunningVM } from '../types.js';
import { findGuestAddress, type AddressLookup } from './address.js';
import { readBundleConfig } from './bundle-config.js';
import { stopDetachedVmhost } from './detached-vmhost.js';
import { watchProcessExit } from './process-exit.js';
import { DEFAULTS } from '../defaults.js';

/**
 * A vz VM that another process started detached (`macvm vm start`), rebuilt from its runtime
 * dir's vm.json: enough to find its address and to stop it (`macvm vm stop` / `vm rm`) through
 * its vmhost's socket, or by signals when the socket is gone. `exited` polls the PID.
 */
export function attachVzRunningVM(clone: Clone, record: VmRecord, address?: AddressLookup): RunningVM {
  return new AttachedVzVM(clone, record, address);
}

class AttachedVzVM implements RunningVM {
  readonly exited: Promise<ExitInfo>;
  private stopping?: Promise<void>;

  constructor(
    readonly clone: Clone,
    private readonly record: VmRecord,
    private readonly address?: AddressLookup,
  ) {
    this.exited = record.pid ? watchProcessExit(record.pid, record.pidStartTime) : Promise.resolve({ code: null, signal: null });
  }

  get pid(): number | undefined {
    return this.record.pid;
  }

  get consoleLogPath(): string {
    return join(this.clone.runtimeDir, 'console.log');
  }

  async endpoint(deadline: Deadline): Promise<GuestEndpoint> {
    if (this.record.ssh) return this.record.ssh;
    return deadline.run('address', async () => {
      let mac: string;
      try {
        mac = (await readBundleConfig(join(this.clone.runtimeDir, 'bundle'))).macAddress;
      } catch (error) {
        throw new MacvmError('MACVM_ADDRESS_NOT_FOUND', `VM ${this.clone.id} has no readable bundle config to take its MAC address from.`, { cause: error });
      }
      return { host: await findGuestAddress(mac, deadline, this.exited, this.address), port: 22 };
    });
  }

  /** Graceful (requestStop within `gracefulMs`), then hard stop, then signals; idempotent. */
  stop(options: { gracefulMs?: number } = {}): Promise<void> {
    const { pid, pidStartTime } = this.record;
    if (pid === undefined) return Promise.resolve(); // never booted: nothing runs
    this.stopping ??= stopDetachedVmhost({ pid, pidStartTime, runtimeDir: this.clone.runtimeDir, exited: this.exited, vmId: this.clone.id }, options.gracefulMs ?? DEFAULTS.stopGracefulMs);
    return this.stopping;
  }
}
