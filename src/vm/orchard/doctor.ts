import { randomBytes } from 'node:crypto';
import { MacvmError, messageOf } from '../../errors.js';
import { OrchardApiError, OrchardClient } from './client.js';
import { orchardError } from './orchard-error.js';
import { orchardConfigured, resolveController, type OrchardSettings } from './settings.js';

export interface OrchardCheck {
  ok: boolean;
  detail: string;
  fix?: string;
}

/**
 * `macvm doctor`'s orchard line: undefined when no controller is configured (nothing is asked
 * then), otherwise whether the controller answers and accepts the service account:
 *
 *   GET /v1/controller/info             reachable, TLS trusted, account valid (no role needed)
 *   DELETE /v1/vms/<random unused name> 404 means the account holds compute:write, a 401 with
 *                                       a message names the missing role (api.go authorizeBase);
 *                                       the name is fresh, so nothing can be deleted.
 */
export async function checkOrchard(settings: OrchardSettings | undefined, options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<OrchardCheck | undefined> {
  const env = options.env ?? process.env;
  if (!orchardConfigured(settings, env)) return undefined;
  const timeoutMs = options.timeoutMs ?? 5_000;
  let client: OrchardClient;
  try {
    client = new OrchardClient(await resolveController(settings, { env, cwd: options.cwd }));
  } catch (error) {
    return failed(error);
  }
  try {
    const info = await client.controllerInfo(AbortSignal.timeout(timeoutMs));
    try {
      await client.deleteVm(`macvm-doctor-${randomBytes(6).toString('hex')}`, AbortSignal.timeout(timeoutMs));
    } catch (error) {
      if (!(error instanceof OrchardApiError && error.status === 401)) throw error;
      return failed(orchardError(error, { client, action: 'check the role compute:write', fallback: 'MACVM_PROVIDER_UNAVAILABLE' }));
    }
    const account = client.serviceAccountName ? `service account "${client.serviceAccountName}" accepted (compute:write)` : 'no service account (the controller does not require one)';
    return { ok: true, detail: `controller ${client.url}${info.version ? ` (Orchard ${info.version})` : ''} reachable; ${account}` };
  } catch (error) {
    return failed(orchardError(error, { client, action: 'reach the controller', fallback: 'MACVM_PROVIDER_UNAVAILABLE' }));
  }
}

function failed(error: unknown): OrchardCheck {
  const message = messageOf(error).split('\n')[0]!;
  return { ok: false, detail: message, fix: error instanceof MacvmError ? error.hint : undefined };
}
