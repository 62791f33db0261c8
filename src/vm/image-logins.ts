import type { ProviderConfigView } from './provider-definition.js';

/**
 * The config's per-image logins (`images.<name>.ssh`), keyed by image name: what qemu, vz and
 * tart read their pinned host keys and users from.
 */
export function imageLogins(view: ProviderConfigView): Record<string, Record<string, unknown>> {
  return Object.fromEntries(Object.entries(view.images).flatMap(([name, image]) => (image.ssh ? [[name, image.ssh] as const] : [])));
}
