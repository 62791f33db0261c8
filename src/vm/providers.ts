import { MacvmError } from '../errors.js';
import { createQemuProvider } from './qemu/provider.js';
import type { Provider, ProviderName } from './types.js';

export const PROVIDER_NAMES: readonly ProviderName[] = ['qemu', 'vz', 'tart', 'ssh', 'orchard'];

export interface ProviderOptions {
  detached?: boolean;
  /** Provider-specific settings from macvm.config.ts (ssh target, orchard controller, ...). */
  settings?: Record<string, unknown>;
}

/**
 * Providers are loaded on demand so that, say, a Linux host never loads the
 * Virtualization.framework glue, and a missing optional piece fails only when chosen.
 */
export async function loadProvider(name: ProviderName, options: ProviderOptions = {}): Promise<Provider> {
  switch (name) {
    case 'qemu':
      // settings: { accelerator?, binary? } (src/vm/qemu/settings.ts), checked when the provider is made.
      return createQemuProvider({ detached: options.detached, settings: options.settings });
    case 'ssh': {
      // An existing machine: settings { host, port?, user, privateKeyPath | password, hostKey, os?, arch? }, validated in prepare().
      const { createSshProviderFromConfig } = await import('./ssh/provider.js');
      return createSshProviderFromConfig(options.settings, { detached: options.detached });
    }
    case 'vz': {
      // Apple Silicon: Tart-compatible bundles booted by vmhost. settings: { images: { <name>|'*': { hostKey, user?, password?, privateKeyPath? } } }
      const { createVzProvider } = await import('./vz/provider.js');
      return createVzProvider({ ...(options.settings as Parameters<typeof createVzProvider>[0]), detached: options.detached });
    }
    case 'tart': {
      const { createTartProvider } = await import('./tart/provider.js');
      return createTartProvider({ ...(options.settings as Parameters<typeof createTartProvider>[0]), detached: options.detached });
    }
    case 'orchard': {
      // A fleet of Macs behind a Cirrus Labs Orchard controller. settings: { controller?, serviceAccount?, context?, certificate?,
      // headless?, labels?, resources?, imagePullPolicy?, images: { <name>|'*': { source?, hostKey, user?, password?, privateKeyPath? } } }, checked in prepare().
      const { createOrchardProviderFromConfig } = await import('./orchard/provider.js');
      return createOrchardProviderFromConfig(options.settings, { detached: options.detached });
    }
    default:
      throw new MacvmError('MACVM_PROVIDER_UNAVAILABLE', `The "${name}" provider is not available in this build.`, {
        hint: `Use qemu, vz, tart, ssh or orchard. Run \`macvm doctor\` to see which providers work on this host.`,
      });
  }
}

/** vz on Apple Silicon Macs, qemu elsewhere. */
export function defaultProviderName(platform = process.platform, arch = process.arch): ProviderName {
  return platform === 'darwin' && arch === 'arm64' ? 'vz' : 'qemu';
}
