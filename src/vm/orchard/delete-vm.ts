import { MacvmError } from '../../errors.js';
import type { OrchardClient } from './client.js';
import { orchardError } from './orchard-error.js';

/**
 * DELETE /v1/vms/{name}, logged to the VM's console.log; 404 counts as deleted (the reaper, `gc`
 * or `orchard delete vm` may have been first). Orchard has no "stopped but kept" state, so this
 * is how an Orchard VM is both stopped and removed. Throws MACVM_STOP_FAILED otherwise.
 */
export async function deleteVm(api: OrchardClient, name: string, log: (line: string) => Promise<void>): Promise<void> {
  try {
    const existed = await api.deleteVm(name);
    await log(existed ? `DELETE ${api.url}/v1/vms/${name}: deleted` : `DELETE ${api.url}/v1/vms/${name}: already gone`);
  } catch (error) {
    const mapped = orchardError(error, { client: api, action: `delete VM "${name}"`, fallback: 'MACVM_STOP_FAILED', vm: name });
    await log(`DELETE failed: ${mapped.message.split('\n')[0]}`);
    throw new MacvmError('MACVM_STOP_FAILED', `The Orchard VM ${name} could not be deleted: ${mapped.message}`, {
      hint: `\`macvm gc\` retries (its runtime dir is kept); by hand: \`orchard delete vm ${name}\`.`,
      cause: mapped,
      details: mapped.details,
    });
  }
}
