import { MacvmError } from '../../errors.js';
import { Deadline } from '../../shared/deadline.js';
import type { ProviderDefinition } from '../provider-definition.js';
import { cleanupInfoOf } from './cleanup.js';
import { ORCHARD_SETTINGS_RULE } from './settings-rule.js';

/** Where an Orchard VM lives, from its record alone (no request); undefined when it names no controller. */
function location(record: Parameters<ProviderDefinition['describe']>[0]): { controller: string; vm: string } | undefined {
  const info = cleanupInfoOf(record);
  return info ? { controller: info.controller, vm: info.vm } : undefined;
}

/**
 * orchard: a fleet of Macs behind a Cirrus Labs Orchard controller. The VM lives on the
 * controller, not here: it is reached through a port forward of the process that needs it, and
 * Orchard has no stopped-but-kept state, so stopping one deletes it.
 */
export const orchardDefinition: ProviderDefinition = {
  name: 'orchard',
  summary: 'a fleet of Macs behind an Orchard controller (REST API, port forwards)',
  sectionRule: ORCHARD_SETTINGS_RULE,
  // A fleet: several VMs at once by default; the controller queues what its workers cannot take.
  defaults: { slots: () => 4, connectTimeoutMs: 15_000 },
  runsOn: () => true,
  // Per image: its login and the Orchard image it runs (`source`); the config file is recorded so
  // the reaper can read the credentials again to delete the VM.
  settings(view) {
    const images = Object.entries(view.images).flatMap(([name, image]) =>
      image.ssh || image.source ? [[name, { ...image.ssh, ...(image.source ? { source: image.source } : {}) }] as const] : [],
    );
    return { ...view.section, images: Object.fromEntries(images), ...(view.configFile ? { configFile: view.configFile } : {}) };
  },
  async create(settings, { detached }) {
    const { createOrchardProviderFromConfig } = await import('./provider.js');
    return createOrchardProviderFromConfig(settings, { detached });
  },
  async attach(dir, record, settings) {
    // Only a record the orchard provider wrote names its controller; anything else is just removed.
    if (!cleanupInfoOf(record)) return {};
    const { attachOrchardVm } = await import('./attach.js');
    const { clone, running, disconnect } = attachOrchardVm(dir, record, settings);
    return { clone, running: () => running, disconnect };
  },
  async describe(record) {
    const where = location(record);
    // cpus are recorded just before POST /v1/vms: without them the controller never heard of the VM.
    return {
      state: record.cpus === undefined ? 'created' : 'remote',
      reach: where ? `via ${where.controller}` : '-',
      ...(where ? { lives: `Orchard VM ${where.vm} on ${where.controller}`, extra: { orchard: where } } : {}),
    };
  },
  // The port forward `vm start` opened died with it: this process opens its own.
  async endpoint(id, _record, running) {
    if (!running) throw new MacvmError('MACVM_VM_STOPPED', `VM ${id} was never created on its Orchard controller (its start failed); \`macvm vm rm ${id}\` removes it.`);
    const deadline = new Deadline(60_000);
    try {
      return await running.endpoint(deadline);
    } finally {
      deadline.finish();
    }
  },
  stoppedMessage(id, record, hadRunningVm) {
    const where = location(record);
    return where && hadRunningVm ? `${id} deleted on ${where.controller} (Orchard cannot stop a VM and keep it; \`macvm vm rm ${id}\` removes its runtime dir)` : undefined;
  },
  async doctor(context) {
    const { checkOrchard } = await import('./doctor.js');
    const result = await checkOrchard(context.config.section);
    return [result ? { area: 'orchard', ...result } : { area: 'orchard', ok: true, detail: 'not configured: set `orchard` in macvm.config.ts (or ORCHARD_URL) to use a fleet of Macs' }];
  },
};
