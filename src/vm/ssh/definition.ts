import { describeLocalVm, recordedEndpoint } from '../local-vm.js';
import type { ProviderDefinition } from '../provider-definition.js';
import { SSH_SETTINGS_RULE } from './settings.js';

/** ssh: an existing machine (a lab Mac, any SSH server): nothing is cloned or booted, macvm only logs in. */
export const sshDefinition: ProviderDefinition = {
  name: 'ssh',
  summary: 'any existing machine reachable over SSH: nothing is cloned or booted',
  sectionRule: SSH_SETTINGS_RULE,
  // One existing machine, whose state suites would otherwise share.
  defaults: { slots: () => 1, connectTimeoutMs: 5_000 },
  runsOn: () => true,
  settings: (view) => view.section,
  async create(settings, { detached }) {
    const { createSshProviderFromConfig } = await import('./provider.js');
    return createSshProviderFromConfig(settings, { detached });
  },
  // Nothing runs here to stop: removing the record is all there is.
  attach: async () => ({}),
  describe: describeLocalVm,
  endpoint: (id, record) => recordedEndpoint(id, record),
  doctor: async () => [{ area: 'ssh', ok: true, detail: 'works with any reachable machine: set `ssh` in macvm.config.ts' }],
};
