import { MacvmError, type MacvmErrorCode, messageOf } from '../../errors.js';
import { OrchardApiError, type OrchardClient } from './client.js';

/*
 * What went wrong talking to the controller, said once for every caller (prepare, boot, stop,
 * the reaper, doctor): which controller, which account, what it answered — never the token.
 */

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

export interface ErrorContext {
  client: OrchardClient;
  /** What macvm was doing, e.g. `create VM "macvm-…"`. */
  action: string;
  /** The code for anything not recognised (a 5xx, an unexpected status). */
  fallback: MacvmErrorCode;
  vm?: string;
}

/**
 * Turns what the controller (or the network) said into a MacvmError with a stable code. Messages
 * name the controller and the service account, never the token. MacvmErrors (a deadline) pass through.
 */
export function orchardError(error: unknown, context: ErrorContext): MacvmError {
  if (error instanceof MacvmError) return error;
  const { client } = context;
  const controller = `the Orchard controller ${client.url}`;
  if (error instanceof OrchardApiError) {
    const said = error.apiMessage ? `: ${error.apiMessage}` : '';
    const details = { controller: client.url, status: error.status, apiMessage: error.apiMessage, vm: context.vm, serviceAccount: client.serviceAccountName };
    if (error.status === 401) {
      // Empty body: unknown account or wrong token (api.go authenticateMiddleware), or no
      // credentials at all; a message: the account lacks a role (api.go authorizeBase).
      const who = client.serviceAccountName ? `service account "${client.serviceAccountName}" (from ${client.target.origin.serviceAccount ?? 'the config'})` : 'no service account (none is configured)';
      const problem = error.apiMessage ? `lacks a role it needs${said}` : client.serviceAccountName ? 'was refused: unknown name or wrong token' : 'is not enough: the controller requires one';
      return new MacvmError('MACVM_CONFIG_INVALID', `Could not ${context.action}: ${controller} answered 401 Unauthorized — ${who} ${problem}.`, {
        hint: error.apiMessage
          ? 'Give the service account the roles compute:read and compute:write (`orchard create service-account … --roles …`).'
          : 'Set orchard.serviceAccount { name, token } in macvm.config.ts, or ORCHARD_SERVICE_ACCOUNT_NAME / ORCHARD_SERVICE_ACCOUNT_TOKEN; the account needs the roles compute:read and compute:write.',
        details,
      });
    }
    if (error.status === 404) {
      return new MacvmError('MACVM_VM_NOT_FOUND', `Could not ${context.action}: ${controller} has no VM${context.vm ? ` "${context.vm}"` : ''} (404).`, { details });
    }
    if (error.status === 409 || error.status === 412 || error.status === 400) {
      return new MacvmError(context.fallback, `Could not ${context.action}: ${controller} refused it (${error.status})${said}.`, { details });
    }
    return new MacvmError(context.fallback, `Could not ${context.action}: ${controller} answered ${error.status}${said}.`, { details });
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = messageOf(error);
  if (code && TLS_CODES.has(code)) {
    const pinned = client.target.certificatePem ? ` (the pinned certificate from ${client.target.origin.certificate})` : '';
    return new MacvmError('MACVM_PROVIDER_UNAVAILABLE', `Could not ${context.action}: the TLS certificate of ${controller} is not trusted${pinned}: ${message}.`, {
      hint: client.target.certificatePem
        ? 'The controller presents another certificate than the pinned one. Get the current one out of band and compare its SHA-256 fingerprint before trusting it.'
        : "If the controller uses its own self-signed certificate, set orchard.certificate to it (as `orchard context create` stores it in ~/.orchard/orchard.yml), after comparing its SHA-256 fingerprint (`openssl s_client -connect <host>:6120 </dev/null | openssl x509 -noout -fingerprint -sha256`) with the controller's.",
      cause: error,
      details: { controller: client.url, tlsError: code },
    });
  }
  return new MacvmError('MACVM_PROVIDER_UNAVAILABLE', `Could not ${context.action}: ${controller} cannot be reached: ${message}${code && !message.includes(code) ? ` (${code})` : ''}.`, {
    hint: `Check the address (from ${client.target.origin.url}) and that the controller runs (\`orchard dev\` starts one locally).`,
    cause: error,
    details: { controller: client.url, networkError: code },
  });
}
