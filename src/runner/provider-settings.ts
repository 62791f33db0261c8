import type { ProviderName } from '../vm/types.js';
import type { RunContext } from './run-context.js';

/** The parts of macvm.config.ts providers need: per-image logins, the ssh target, the Orchard controller. */
export type ProviderSettingsSource = Pick<RunContext, 'images' | 'ssh' | 'orchard' | 'qemu'>;

/**
 * What each provider gets from the config: the ssh target; per-image guest logins (pinned
 * host keys) for vz and tart; for orchard the controller settings plus, per image, its login
 * and the Orchard image it runs (`source`). One place, so `macvm test` and the `vm` verbs agree.
 */
export function providerSettings(provider: ProviderName, config: ProviderSettingsSource): Record<string, unknown> | undefined {
  if (provider === 'ssh') return config.ssh;
  if (provider === 'qemu') {
    // images.<name>.ssh overrides the login the image's manifest records (its host key must then match).
    const logins = Object.entries(config.images).flatMap(([name, image]) => (image.ssh ? [[name, image.ssh] as const] : []));
    return logins.length > 0 ? { ...config.qemu, images: Object.fromEntries(logins) } : config.qemu;
  }
  if (provider === 'orchard') {
    const images = Object.entries(config.images).flatMap(([name, image]) =>
      image.ssh || image.source ? [[name, { ...image.ssh, ...(image.source ? { source: image.source } : {}) }] as const] : [],
    );
    return { ...config.orchard, images: Object.fromEntries(images) };
  }
  if (provider === 'vz' || provider === 'tart') {
    const logins = Object.entries(config.images).flatMap(([name, image]) => (image.ssh ? [[name, image.ssh] as const] : []));
    return { images: Object.fromEntries(logins) };
  }
  return undefined;
}
