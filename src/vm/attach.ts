import { rm } from 'node:fs/promises';
import { MacvmError } from '../errors.js';
import { runCleanupCommands } from './cleanup-commands.js';
import { homePaths } from './home.js';
import { cleanupInfoOf } from './orchard/cleanup.js';
import { QemuRunningVM } from './qemu/boot.js';
import { attachTartVm } from './tart/provider.js';
import { attachVzRunningVM } from './vz/attach.js';
import { listRuntimeDirs, readVmRecord, type VmRecord } from './runtime-dir.js';
import type { Clone, Image, RunningVM } from './types.js';

/**
 * A VM known only by its runtime dir: one started by `macvm vm start` in another
 * process. Enough to stop it gracefully and delete its clone.
 */
export interface AttachedVM {
  record: VmRecord;
  dir: string;
  /** destroy() deletes the clone the provider's way (tart: `tart delete`) and the runtime dir. */
  clone: Clone;
  /** Undefined where there is no VM process to stop (never booted, or the ssh provider). */
  running: RunningVM | undefined;
  /**
   * Closes what this process opened to reach the VM (orchard: its port-forward listener), so the
   * process can exit; the VM keeps running. A no-op for providers that open nothing.
   */
  disconnect(): Promise<void>;
}

export interface AttachOptions {
  /**
   * The provider's settings from macvm.config.ts (src/runner/provider-settings.ts), for providers
   * that need them to reach the VM: orchard (its controller and service account).
   */
  settings?: Record<string, unknown>;
}

export async function attachVm(id: string, options: AttachOptions = {}): Promise<AttachedVM> {
  const dir = homePaths().vm(id);
  const record = await readVmRecord(dir);
  if (!record) {
    const known = (await listRuntimeDirs()).map((d) => d.id);
    throw new MacvmError('MACVM_VM_NOT_FOUND', `No VM "${id}".`, {
      hint: known.length ? `Known VMs: ${known.join(', ')} (see \`macvm vm ls\`).` : 'No VMs exist; start one with `macvm vm start linux-test`.',
    });
  }
  const disconnect = () => Promise.resolve();
  if (record.provider === 'tart') return { record, dir, disconnect, ...attachTartVm(dir, record) };
  // Only a record the orchard provider wrote names its controller; anything else is just removed below.
  if (record.provider === 'orchard' && cleanupInfoOf(record)) {
    const { attachOrchardVm } = await import('./orchard/attach.js');
    const { clone, running, disconnect: close } = attachOrchardVm(dir, record, options.settings);
    return { record, dir, clone, running, disconnect: close };
  }
  const clone: Clone = {
    id,
    image: { name: record.image, provider: record.provider } as Image,
    runtimeDir: dir,
    boot: () => Promise.reject(new MacvmError('MACVM_BAD_ARGUMENT', 'An attached VM cannot be booted again.')),
    // Whatever lives outside the runtime dir (an Orchard VM on its controller) goes first; if
    // that fails the dir stays, so `vm rm` or `macvm gc` can try again.
    destroy: async () => {
      const errors = await runCleanupCommands(record);
      if (errors.length > 0) {
        throw new MacvmError('MACVM_STOP_FAILED', `Could not remove all of VM ${id}: ${errors.join('; ')}`, { hint: 'Try `macvm vm rm` again, or `macvm gc --all`.' });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  let running: RunningVM | undefined;
  if (record.pid !== undefined && record.provider === 'qemu') running = QemuRunningVM.attach(clone, record);
  // vmhost.sock in the runtime dir reaches the detached vmhost that owns the VM.
  if (record.pid !== undefined && record.provider === 'vz') running = attachVzRunningVM(clone, record);
  return { record, dir, clone, running, disconnect };
}
