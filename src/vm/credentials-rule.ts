import { MacvmError } from '../errors.js';
import { checkValue, type Rule } from '../util/validate.js';

/**
 * The config section of providers whose guests are logged in to with per-image credentials
 * (`images.<name>.ssh`) and nothing else to set: vz and tart. Their one switch turns host-key
 * pinning off, for throwaway machines only.
 */
export const INSECURE_HOST_KEY_RULE = { kind: 'object', keys: { insecureAcceptAnyHostKey: { kind: 'boolean' } } } satisfies Rule;

/**
 * What such a provider is handed: that section plus the logins per image name ("*" for every
 * image, possible in code only). Settings given in code (startMacVM({ providerSettings })) never
 * went through the config validator, so the provider checks them against this when it is made.
 */
const PROVIDER_SETTINGS_RULE: Rule = {
  kind: 'object',
  keys: {
    ...INSECURE_HOST_KEY_RULE.keys,
    images: {
      kind: 'record',
      value: {
        kind: 'object',
        keys: { user: { kind: 'string', nonEmpty: true }, password: { kind: 'string', secret: true }, privateKeyPath: { kind: 'string', nonEmpty: true }, hostKey: { kind: 'string', nonEmpty: true } },
      },
    },
  },
};

/** Throws MACVM_CONFIG_INVALID naming every bad key of a vz/tart provider's settings. */
export function checkLoginSettings(provider: string, settings: Record<string, unknown> | undefined): void {
  const problems = checkValue(settings ?? {}, PROVIDER_SETTINGS_RULE, provider);
  if (problems.length === 0) return;
  throw new MacvmError('MACVM_CONFIG_INVALID', `Invalid ${provider} provider settings: ${problems.map((p) => p.message).join('; ')}.`, {
    hint: `Per-image logins go in macvm.config.ts under images.<name>.ssh; ${provider}.insecureAcceptAnyHostKey is the provider's one switch.`,
    details: { problems },
  });
}
