import { rm } from 'node:fs/promises';
import { MacvmError } from '../errors.js';
import type { AttachedVM } from './attached-vm.js';
import { runCleanupCommands } from './cleanup-commands.js';
import { homePaths } from './home.js';
import { providerDefinition, isProviderName } from './registry.js';
import { listRuntimeDirs, readVmRecord, type VmRecord } from './runtime-dir.js';
import type { Clone, Image } from './types.js';

export type { AttachedVM } from './attached-vm.js';

export interface AttachOptions {
  /**
   * The provider's settings from macvm.config.ts (ProviderDefinition.settings), for providers
   * that need them to reach the VM: orchard (its controller and service account).
   */
  settings?: Record<string, unknown>;
}

/** A VM by id, rebuilt from its runtime dir by the provider that wrote its record. */
export async function attachVm(id: string, options: AttachOptions = {}): Promise<AttachedVM> {
  const dir = homePaths().vm(id);
  const record = await readVmRecord(dir);
  if (!record) {
    const known = (await listRuntimeDirs()).map((d) => d.id);
    throw new MacvmError('MACVM_VM_NOT_FOUND', `No VM "${id}".`, {
      hint: known.length ? `Known VMs: ${known.join(', ')} (see \`macvm vm ls\`).` : 'No VMs exist; start one with `macvm vm start linux-test`.',
    });
  }
  // A record naming no provider this build knows is only removed: the generic clone does that.
  const parts = isProviderName(record.provider) ? await providerDefinition(record.provider).attach(dir, record, options.settings) : {};
  const clone = parts.clone ?? genericClone(id, dir, record);
  return { record, dir, clone, running: parts.running?.(clone), disconnect: parts.disconnect ?? (() => Promise.resolve()) };
}

/**
 * A clone known only by its record: destroying it runs the record's cleanup commands (whatever
 * lives outside the runtime dir goes first; if that fails the dir stays, so `vm rm` or `macvm gc`
 * can try again), then removes the runtime dir.
 */
function genericClone(id: string, dir: string, record: VmRecord): Clone {
  return {
    id,
    image: { name: record.image, provider: record.provider } as Image,
    runtimeDir: dir,
    boot: () => Promise.reject(new MacvmError('MACVM_BAD_ARGUMENT', 'An attached VM cannot be booted again.')),
    destroy: async () => {
      const errors = await runCleanupCommands(record);
      if (errors.length > 0) {
        throw new MacvmError('MACVM_STOP_FAILED', `Could not remove all of VM ${id}: ${errors.join('; ')}`, { hint: 'Try `macvm vm rm` again, or `macvm gc --all`.' });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
