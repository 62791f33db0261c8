import type { Rule } from '../util/validate.js';

/**
 * The config section of providers whose guests are logged in to with per-image credentials
 * (`images.<name>.ssh`) and nothing else to set: vz and tart. Their one switch turns host-key
 * pinning off, for throwaway machines only.
 */
export const INSECURE_HOST_KEY_RULE: Rule = { kind: 'object', keys: { insecureAcceptAnyHostKey: { kind: 'boolean' } } };
