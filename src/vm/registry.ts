/**
 * Every provider macvm has, once. Adding one is a folder under src/vm/ with a definition.ts, its
 * name in the ProviderName union (./types.ts) and one line below: the compiler points at each.
 */
import { MacvmError } from '../errors.js';
import { didYouMean } from '../util/validate.js';
import { currentHost, type HostFacts } from './host-facts.js';
import { orchardDefinition } from './orchard/definition.js';
import type { ProviderDefinition } from './provider-definition.js';
import { qemuDefinition } from './qemu/definition.js';
import { sshDefinition } from './ssh/definition.js';
import { tartDefinition } from './tart/definition.js';
import type { Provider, ProviderName } from './types.js';
import { vzDefinition } from './vz/definition.js';

const DEFINITIONS = {
  qemu: qemuDefinition,
  vz: vzDefinition,
  tart: tartDefinition,
  ssh: sshDefinition,
  orchard: orchardDefinition,
} as const satisfies Record<ProviderName, ProviderDefinition>;

/** In the order messages and docs list them. */
export const PROVIDER_NAMES = Object.keys(DEFINITIONS) as ProviderName[];

export function isProviderName(value: unknown): value is ProviderName {
  return typeof value === 'string' && Object.hasOwn(DEFINITIONS, value);
}

export function providerDefinition(name: ProviderName): ProviderDefinition {
  return DEFINITIONS[name];
}

export function providerDefinitions(): ProviderDefinition[] {
  return PROVIDER_NAMES.map((name) => DEFINITIONS[name]);
}

/** A provider name from a flag or an environment variable, or a MACVM_BAD_ARGUMENT that lists them. */
export function parseProviderName(value: string, source = 'provider'): ProviderName {
  if (isProviderName(value)) return value;
  const suggestion = didYouMean(value, PROVIDER_NAMES);
  throw new MacvmError('MACVM_BAD_ARGUMENT', `Unknown ${source} "${value}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}; use one of ${PROVIDER_NAMES.join(', ')}.`);
}

/** vz on Apple Silicon Macs, qemu elsewhere: the one definition that says it is the default here. */
export function defaultProviderName(host: Pick<HostFacts, 'platform' | 'arch'> = currentHost()): ProviderName {
  return providerDefinitions().find((definition) => definition.isDefaultOn?.(host))?.name ?? 'qemu';
}

/** Host-wide VMs at once per provider, when the config and MACVM_SLOTS_* say nothing. */
export function defaultSlots(host: HostFacts = currentHost()): Record<ProviderName, number> {
  return Object.fromEntries(providerDefinitions().map((definition) => [definition.name, definition.defaults.slots(host)])) as Record<ProviderName, number>;
}

/** A provider ready to prepare images and clone them, made from its settings. */
export function loadProvider(name: ProviderName, options: { detached?: boolean; settings?: Record<string, unknown> } = {}): Promise<Provider> {
  if (!isProviderName(name)) parseProviderName(String(name));
  return providerDefinition(name).create(options.settings, { detached: options.detached });
}
