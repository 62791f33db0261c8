import { MacvmError } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import { OrchardApiError, type OrchardClient, type OrchardVm } from './client.js';
import { orchardError } from './orchard-error.js';

/** A VM just POSTed, as boot() waits for it. */
export interface BootingVm {
  api: OrchardClient;
  /** Its name on the controller. */
  vm: string;
  /** The macvm image name (for the hint) and what the workers run. */
  image: { name: string; source: string };
  /** How often to ask; default 1000 ms. */
  pollIntervalMs?: number;
  log: (line: string) => Promise<void>;
}

/**
 * What a worker reports when it cannot get the image: Tart's "the specified VM "x" does not
 * exist" (Sources/tart/VMStorageHelper.swift) for a local name, or a registry's 404 while
 * pulling the manifest (Sources/tart/OCI/Registry.swift, RegistryError.UnexpectedHTTPStatusCode),
 * wrapped by the worker as `failed to clone the VM: tart command failed: "…"` or `failed to pull
 * the VM: …` (internal/worker/vmmanager/tart/tart.go, base/cmd.go).
 */
const IMAGE_MISSING = /does not exist|pulling manifest.*\b404\b|\b404\b.*pulling manifest|MANIFEST_UNKNOWN|NAME_UNKNOWN|manifest unknown|repository name not known/i;

/**
 * Polls GET /v1/vms/{name}: pending → running, or failed with the worker's status_message. Each
 * new status goes to console.log and into the deadline's step, so a boot that hangs says what
 * the controller said last.
 */
export async function waitUntilRunning(booting: BootingVm, deadline: Deadline, signal: AbortSignal): Promise<void> {
  const { api, vm: name } = booting;
  let last = '';
  for (;;) {
    if (signal.aborted || deadline.expired) throw deadline.error();
    let vm: OrchardVm | undefined;
    try {
      vm = await api.getVm(name, signal);
    } catch (error) {
      if (signal.aborted) throw deadline.error();
      const final = error instanceof OrchardApiError && (error.status === 401 || error.status === 404);
      const mapped = orchardError(error, { client: api, action: `get the status of VM "${name}"`, fallback: 'MACVM_BOOT_FAILED', vm: name });
      if (final) throw mapped;
      // A controller restart or a network blip: keep asking until the deadline.
      await booting.log(`status unknown: ${mapped.message.split('\n')[0]}`);
    }
    if (vm) {
      const status = vm.status ?? 'pending';
      const message = vm.status_message ?? '';
      const now = `${status}${vm.worker ? ` on ${vm.worker}` : ''}${message ? `: ${message}` : ''}`;
      if (now !== last) {
        last = now;
        await booting.log(`status ${now}`);
        deadline.enter(status === 'pending' ? `boot (orchard VM pending, ${message ? `"${truncate(message, 200)}"` : 'no status message'})` : 'boot');
      }
      if (status === 'running') return;
      if (status === 'failed') throw bootFailure(booting, vm);
    }
    await deadline.sleep(booting.pollIntervalMs ?? 1_000);
  }
}

/** A missing image is MACVM_IMAGE_NOT_FOUND (the config is wrong); anything else the worker's own words. */
function bootFailure({ api, vm: name, image }: BootingVm, vm: OrchardVm): MacvmError {
  const message = vm.status_message?.trim() || 'no status message';
  const details = { vm: name, controller: api.url, worker: vm.worker, image: image.source, statusMessage: vm.status_message };
  if (IMAGE_MISSING.test(message)) {
    return new MacvmError('MACVM_IMAGE_NOT_FOUND', `Orchard could not get the image "${image.source}" for VM ${name}${vm.worker ? ` on worker ${vm.worker}` : ''}: ${message}`, {
      hint: `Check images.${image.name}.source; a private registry needs \`tart login\` on every worker.`,
      details,
    });
  }
  return new MacvmError('MACVM_BOOT_FAILED', `The Orchard VM ${name} failed${vm.worker ? ` on worker ${vm.worker}` : ''}: ${message}`, {
    hint: `See \`orchard logs vm ${name}\` while it exists, and the worker's log.`,
    details,
  });
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
