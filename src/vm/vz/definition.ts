import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isAppleSilicon } from '../host-facts.js';
import { intactImage } from '../image-listing.js';
import { imageLogins } from '../image-logins.js';
import { describeLocalVm, recordedEndpoint } from '../local-vm.js';
import type { ProviderDefinition } from '../provider-definition.js';
import { checkLoginSettings, INSECURE_HOST_KEY_RULE } from '../credentials-rule.js';
import { BUNDLE_FILES, readBundleConfig } from './bundle-config.js';

/**
 * vz: Apple's Virtualization.framework through macvm's own addon, one vmhost process per VM,
 * booting Tart-compatible bundles cloned with APFS clonefile. The default on Apple Silicon.
 */
export const vzDefinition: ProviderDefinition = {
  name: 'vz',
  summary: 'macOS 12+ on Apple Silicon: Virtualization.framework through the native addon',
  sectionRule: INSECURE_HOST_KEY_RULE,
  // macOS's licence allows two macOS guests per host, and Virtualization.framework enforces it.
  defaults: { slots: () => 2, connectTimeoutMs: 5_000 },
  isDefaultOn: isAppleSilicon,
  runsOn: isAppleSilicon,
  settings: (view) => ({ ...view.section, images: imageLogins(view) }),
  async create(settings, { detached }) {
    checkLoginSettings('vz', settings);
    const { createVzProvider } = await import('./provider.js');
    return createVzProvider({ ...(settings as Parameters<typeof createVzProvider>[0]), detached });
  },
  async attach(_dir, record) {
    if (record.pid === undefined) return {};
    // vmhost.sock in the runtime dir reaches the detached vmhost that owns the VM.
    const { attachVzRunningVM } = await import('./attach.js');
    return { running: (clone) => attachVzRunningVM(clone, record) };
  },
  describe: describeLocalVm,
  endpoint: (id, record) => recordedEndpoint(id, record),
  async doctor(context) {
    const { vzDoctorChecks } = await import('./doctor.js');
    return vzDoctorChecks(context);
  },
  // Bundles are Tart's own format, so a pushed one is a Tart image Tart and Orchard can run too.
  registryImages: {
    kind: 'tart',
    async pushPlan(bundleDir) {
      const { tartPushPlan } = await import('../../oci/push.js');
      return tartPushPlan(bundleDir);
    },
  },
  // A bundle made by `macvm image create` (Tart's config.json, disk.img, nvram.bin).
  async describeImage(name, dir) {
    const configured = await stat(join(dir, BUNDLE_FILES.config)).catch(() => undefined);
    if (!configured) return undefined;
    try {
      const config = await readBundleConfig(dir);
      const [os, arch] = [config.os === 'darwin' ? 'macos' : config.os, config.arch === 'arm64' ? 'aarch64' : 'x86_64'];
      return await intactImage({ name, dir, provider: 'vz', os, arch, createdAt: configured.mtime.toISOString() }, join(dir, BUNDLE_FILES.disk));
    } catch {
      return { name, dir, provider: 'vz', status: 'corrupt' };
    }
  },
};
