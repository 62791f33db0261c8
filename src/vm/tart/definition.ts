import { checkLoginSettings, INSECURE_HOST_KEY_RULE } from '../credentials-rule.js';
import { imageLogins } from '../image-logins.js';
import { describeLocalVm, recordedEndpoint } from '../local-vm.js';
import type { ProviderDefinition } from '../provider-definition.js';

/** tart: Cirrus Labs' Tart CLI (`tart clone`, `tart run --no-graphics`, `tart ip`), on macOS. */
export const tartDefinition: ProviderDefinition = {
  name: 'tart',
  summary: 'macOS with Tart installed: `tart clone`, `tart run`, `tart ip`',
  sectionRule: INSECURE_HOST_KEY_RULE,
  // Tart runs macOS guests too: the same two-per-host licence limit as vz.
  defaults: { slots: () => 2, connectTimeoutMs: 5_000 },
  runsOn: (host) => host.platform === 'darwin',
  settings: (view) => ({ ...view.section, images: imageLogins(view) }),
  async create(settings, { detached }) {
    checkLoginSettings('tart', settings);
    const { createTartProvider } = await import('./provider.js');
    return createTartProvider({ ...(settings as Parameters<typeof createTartProvider>[0]), detached });
  },
  async attach(dir, record) {
    const { attachTartVm } = await import('./provider.js');
    const { clone, running } = attachTartVm(dir, record);
    return { clone, running: () => running };
  },
  describe: describeLocalVm,
  endpoint: (id, record) => recordedEndpoint(id, record),
  async doctor(context) {
    const { toolVersion } = await import('../tool-version.js');
    const version = await toolVersion('tart');
    return [
      version
        ? { area: 'tart', ok: true, detail: `tart ${version}` }
        : { area: 'tart', ok: false, detail: 'tart not installed (macOS only: brew install cirruslabs/cli/tart)', notForThisHost: context.host.platform !== 'darwin' },
    ];
  },
};
