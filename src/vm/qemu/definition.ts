import { join } from 'node:path';
import type { Rule } from '../../util/validate.js';
import { isAppleSilicon } from '../host-facts.js';
import { intactImage } from '../image-listing.js';
import { imageLogins } from '../image-logins.js';
import { describeLocalVm, recordedEndpoint } from '../local-vm.js';
import type { ProviderDefinition } from '../provider-definition.js';
import { readQemuManifest } from './manifest.js';
import { ACCELERATOR_SETTINGS } from './settings.js';

const SECTION_RULE: Rule = {
  kind: 'object',
  keys: { accelerator: { kind: 'enum', values: ACCELERATOR_SETTINGS }, binary: { kind: 'string', nonEmpty: true } },
};

/**
 * qemu: qcow2 overlays on a read-only base, booted by qemu-system under KVM, HVF or TCG. The
 * default on every host but Apple Silicon, and what macvm's own tests boot.
 */
export const qemuDefinition: ProviderDefinition = {
  name: 'qemu',
  summary: 'Linux (KVM or TCG) and macOS (HVF) hosts: qcow2 overlays booted by qemu-system',
  sectionRule: SECTION_RULE,
  defaults: {
    // One guest per CPU thread, and no more than one per 2 GiB of host RAM (a guest takes its
    // RAM plus ~250 MiB of qemu overhead, and the host needs room too); at least 1.
    slots: (host) => Math.max(1, Math.min(Math.floor(host.cpus), Math.floor(host.totalMemoryBytes / 2 ** 30 / 2))),
    connectTimeoutMs: 5_000,
  },
  isDefaultOn: (host) => !isAppleSilicon(host),
  runsOn: () => true,
  // images.<name>.ssh overrides the login the image's manifest records (its host key must then match).
  settings(view) {
    const logins = imageLogins(view);
    return Object.keys(logins).length > 0 ? { ...view.section, images: logins } : view.section;
  },
  async create(settings, { detached }) {
    const { createQemuProvider } = await import('./provider.js');
    return createQemuProvider({ detached, settings });
  },
  async attach(_dir, record) {
    if (record.pid === undefined) return {};
    const { QemuRunningVM } = await import('./boot.js');
    return { running: (clone) => QemuRunningVM.attach(clone, record) };
  },
  describe: describeLocalVm,
  endpoint: (id, record) => recordedEndpoint(id, record),
  async doctor(context) {
    const { qemuDoctorChecks } = await import('./doctor.js');
    return qemuDoctorChecks(context);
  },
  async repair(context) {
    const { buildMissingGuests } = await import('./doctor.js');
    await buildMissingGuests(context);
  },
  imageRecipes: {
    'linux-test': {
      summary:
        'A minimal Linux guest made only from Debian packages (kernel, busybox, dropbear): boots to SSH in seconds even without KVM. Used by the tests and the example specs on Linux hosts.',
      build: async (options) => (await import('./image/build-linux-test.js')).buildLinuxTestImage(options),
    },
    'linux-browser': {
      summary:
        "linux-test plus Debian's chromium and chromium-driver with their dependency closure and fonts, for vm.browser({ browserName: 'chrome' }) in a real VM (~230 MiB of downloads; run it with 2 vCPUs / 2 GiB).",
      build: async (options) => (await import('./image/build-linux-browser.js')).buildLinuxBrowserImage(options),
    },
  },
  async imageWithFiles(image, files) {
    const { derivedImage } = await import('./derived-image.js');
    return (await derivedImage(image, files)).name;
  },
  registryImages: {
    kind: 'macvm-qemu',
    async pushPlan(imageDir) {
      const { qemuPushPlan } = await import('./registry-push-plan.js');
      return qemuPushPlan(imageDir);
    },
    async prepareInstall(stagingDir) {
      const { installPulledQemuImage } = await import('./registry-install.js');
      await installPulledQemuImage(stagingDir);
    },
  },
  async describeImage(name, dir) {
    try {
      const manifest = await readQemuManifest(dir, name);
      const facts = { name, dir, provider: 'qemu' as const, os: manifest.os, arch: manifest.arch, createdAt: manifest.createdAt };
      return await intactImage(Array.isArray(manifest.inputs) ? { ...facts, inputs: manifest.inputs } : facts, join(dir, manifest.disk));
    } catch {
      return undefined;
    }
  },
};
