import { MacvmError } from '../../errors.js';
import type { VmRecord } from '../runtime-dir.js';
import type { Image } from '../types.js';
import { cleanupInfoOf } from './cleanup.js';
import { OrchardClone } from './clone.js';
import { lazyClient } from './lazy-client.js';
import { controllerForRecord } from './recorded-controller.js';
import type { OrchardRunningVM } from './running-vm.js';
import type { OrchardProviderSettings } from './settings.js';

export interface OrchardAttachOptions {
  /** Where ORCHARD_* variables are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Base for a relative certificate path in `settings` (default the current directory). */
  cwd?: string;
  /** The port-forward's `wait` in seconds; default 10. */
  portForwardWaitSeconds?: number;
}

export interface AttachedOrchardVm {
  clone: OrchardClone;
  /** Undefined when the VM was never created on the controller (its boot never started). */
  running: OrchardRunningVM | undefined;
  /** Closes this process's port-forward listener, if one is open. The VM keeps running. */
  disconnect(): Promise<void>;
}

/**
 * An Orchard VM another process started (`macvm vm start --provider orchard`), rebuilt from its
 * runtime dir for `macvm vm exec`, `vm stop` and `vm rm`: the same clone and running VM the
 * provider makes (clone.ts, running-vm.ts), without what only the creating process has — so it
 * cannot boot again and never writes vm.json, and it opens a port forward of its own.
 *
 * The controller is the one the record names (its cleanup command's CleanupInfo), resolved only
 * when a request is first made (controllerForRecord: another controller's token is never sent).
 */
export function attachOrchardVm(dir: string, record: VmRecord, settings: Record<string, unknown> | undefined, options: OrchardAttachOptions = {}): AttachedOrchardVm {
  const info = cleanupInfoOf(record);
  if (record.provider !== 'orchard' || !info) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `VM ${record.id} is not an Orchard VM with a recorded controller (provider ${record.provider}).`);
  }
  const clone = new OrchardClone({
    id: record.id,
    vm: info.vm,
    image: { name: record.image, provider: 'orchard' } as Image,
    runtimeDir: dir,
    api: lazyClient(() => controllerForRecord(info, settings as OrchardProviderSettings | undefined, options)),
    // No watch: a short-lived `vm exec` learns that the VM is gone from its own GET and forward.
    reach: { watchIntervalMs: 0, portForwardWaitSeconds: options.portForwardWaitSeconds },
  });
  // cpus are recorded just before POST /v1/vms: without them the controller never heard of the VM.
  const running = record.cpus === undefined ? undefined : clone.adopt();
  return { clone, running, disconnect: () => running?.disconnect() ?? Promise.resolve() };
}
