import { MacvmError } from '../../errors.js';
import { checkValue, type Rule } from '../../util/validate.js';
import type { OrchardProviderSettings } from './settings.js';

/*
 * The orchard settings' shape, apart from how they are resolved (settings.ts): the config
 * validator checks macvm.config.ts's `orchard` section against ORCHARD_SETTINGS_RULE (through the
 * orchard definition), and resolveController checks settings handed in code against the same.
 */

const nonEmptyString: Rule = { kind: 'string', nonEmpty: true };

/** The config's `orchard` section, as users write it (one rule for the config and for code). */
export const ORCHARD_SETTINGS_RULE: Rule = {
  kind: 'object',
  keys: {
    controller: nonEmptyString,
    // The token's value never appears in a message.
    serviceAccount: { kind: 'object', secret: true, required: ['name', 'token'], keys: { name: nonEmptyString, token: { kind: 'string', nonEmpty: true, secret: true } } },
    context: nonEmptyString,
    certificate: nonEmptyString,
    headless: { kind: 'boolean' },
    labels: { kind: 'record', value: { kind: 'string' } },
    resources: { kind: 'record', value: { kind: 'integer', min: 0 } },
    imagePullPolicy: { kind: 'enum', values: ['IfNotPresent', 'Always'] },
    insecureAcceptAnyHostKey: { kind: 'boolean' },
  },
};

/** What the provider is handed: the section plus per-image logins and the config file (OrchardProviderSettings). */
const PROVIDER_SETTINGS_RULE: Rule = {
  kind: 'object',
  keys: {
    ...(ORCHARD_SETTINGS_RULE as Extract<Rule, { kind: 'object' }>).keys,
    images: {
      kind: 'record',
      value: { kind: 'object', keys: { source: nonEmptyString, user: nonEmptyString, password: { kind: 'string', secret: true }, privateKeyPath: nonEmptyString, hostKey: nonEmptyString } },
    },
    configFile: nonEmptyString,
  },
};

/**
 * The config's checks again, for settings handed in code (startMacVM({ providerSettings })) that
 * never went through the config validator. The first problem is thrown, naming its key.
 */
export function checkOrchardSettings(settings: OrchardProviderSettings): void {
  const [problem] = checkValue(settings, PROVIDER_SETTINGS_RULE, 'orchard');
  if (problem) throw new MacvmError('MACVM_CONFIG_INVALID', `${problem.message}.`, { details: { key: problem.path } });
}
