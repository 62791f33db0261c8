import { randomBytes } from 'node:crypto';
import { stopAndRemoveClone } from '../clone-teardown.js';
import { access } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { homePaths, isImageName, macvmHome } from '../home.js';
import { createCloneRuntimeDir, newVmRecord, type VmRecord } from '../runtime-dir.js';
import { pinnedCredentials, type CredentialSettings } from '../credentials.js';
import type { BootOptions, Clone, CloneOptions, Image, Provider, RunningVM } from '../types.js';
import type { AddressLookup } from './address.js';
import { BUNDLE_FILES, readBundleConfig, writeBundleConfig, type TartVmConfig } from './bundle-config.js';
import { cloneBundle } from './clone-bundle.js';
import { randomLocallyAdministeredMac } from './mac-address.js';
import { ensureVmhostBinary, vmhostCommandLine } from './vmhost-binary.js';
import { bootVz, type VmhostCommandLine } from './running-vm.js';
import { isRegistryReference } from '../../oci/reference.js';

/**
 * The vz provider: macOS guests on Apple Silicon through our own Virtualization.framework
 * addon, one vmhost process per VM.
 *
 * Images are Tart-compatible bundles (config.json, disk.img, nvram.bin): `<name>` is
 * $MACVM_HOME/images/<name>, `tart:<name>` is Tart's ~/.tart/vms/<name> (so `tart pull`ed
 * images boot unchanged), and an absolute path is used as is. Each clone is a clonefile copy
 * of the bundle in its runtime dir with a fresh MAC address and a fresh machine identifier.
 */
export interface VzProviderOptions extends CredentialSettings {
  home?: string;
  /** Add a virtio memory balloon device to each VM. */
  memoryBalloon?: boolean;
  /** How to start vmhost; default the signed node from ensureVmhostBinary (tests pass a plain node + stand-in addon). */
  vmhost?: VmhostCommandLine;
  /** Where to look for the guest's address (defaults: /var/db/dhcpd_leases, `arp -an`). */
  address?: AddressLookup;
  /** Fall back to a full copy where the filesystem cannot clone (tests; never for real disks). */
  allowFullCopy?: boolean;
  /**
   * Keep VMs running after this process exits (`macvm vm start`): vmhost runs as its own session
   * and serves its socket; attachVzRunningVM (attach.ts) stops such a VM from another process.
   */
  detached?: boolean;
}

/** Where in a clone's runtime dir its copy of the bundle lives. */
const BUNDLE_DIR = 'bundle';

export interface VzImage extends Image {
  provider: 'vz';
  bundle: string;
  config: TartVmConfig;
}

export function resolveBundleDir(imageRef: string, home = macvmHome()): string {
  if (imageRef.startsWith('tart:')) return join(homedir(), '.tart', 'vms', imageRef.slice('tart:'.length));
  if (isAbsolute(imageRef)) return imageRef;
  if (!isImageName(imageRef)) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `"${imageRef}" is not an image name (letters, digits, . _ - only), "tart:<vm>", or an absolute bundle path.`);
  }
  return homePaths(home).image(imageRef);
}

/**
 * A registry reference (`ghcr.io/cirruslabs/macos-sonoma-base:latest`): the Tart bundle in
 * macvm's cache, or in Tart's own cache when Tart already pulled that digest, pulled now when
 * neither has it. Clones are clonefile(2) copies of it, like any local bundle.
 */
async function pulledBundleDir(reference: string, home: string): Promise<string> {
  const { registryImage } = await import('../registry-images.js');
  return (await registryImage(reference, { home, kind: 'tart' })).dir;
}

export function createVzProvider(options: VzProviderOptions = {}): Provider {
  const home = options.home ?? macvmHome();
  return {
    name: 'vz',
    async prepare(imageRef: string): Promise<VzImage> {
      const bundle = isRegistryReference(imageRef) ? await pulledBundleDir(imageRef, home) : resolveBundleDir(imageRef, home);
      const config = await readBundleConfig(bundle);
      if (config.os !== 'darwin') {
        throw new MacvmError('MACVM_NOT_SUPPORTED', `${bundle} is a ${config.os} bundle; the vz provider boots macOS bundles.`, {
          hint: 'Use the tart provider for Linux bundles, or the qemu provider for Linux guests.',
        });
      }
      for (const file of [BUNDLE_FILES.disk, BUNDLE_FILES.nvram]) {
        try {
          await access(join(bundle, file));
        } catch {
          throw new MacvmError('MACVM_IMAGE_CORRUPT', `The bundle ${bundle} lacks ${file}.`, { hint: 'Recreate it with `macvm image create` or re-pull it with Tart.' });
        }
      }
      return {
        name: imageRef,
        provider: 'vz',
        location: bundle,
        os: 'macos',
        arch: 'aarch64',
        ssh: pinnedCredentials('vz', imageRef, options),
        facts: { cpuCountMin: String(config.cpuCountMin), memorySizeMin: String(config.memorySizeMin) },
        bundle,
        config,
      };
    },

    async clone(image: Image, cloneOptions: CloneOptions): Promise<Clone> {
      const vzImage = image as VzImage;
      if (!vzImage.bundle) throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${image.name}" was not prepared by the vz provider.`);
      const id = `macvm-${randomBytes(4).toString('hex')}`;
      const record = newVmRecord({
        id,
        session: cloneOptions.session.id,
        provider: 'vz',
        image: image.name,
        // The reaper leaves detached VMs alone; `vm rm` and `gc --all` remove them.
        detached: options.detached,
      });
      const runtimeDir = await createCloneRuntimeDir(record, cloneOptions.deadline, async (dir) => {
        const bundle = join(dir, BUNDLE_DIR);
        await cloneBundle(vzImage.bundle, bundle, { allowFullCopy: options.allowFullCopy });
        // Two clones of one image must not share a MAC (one DHCP lease) — the fresh machine
        // identifier is made by the framework in vmhost at boot.
        await writeBundleConfig(bundle, { ...vzImage.config, macAddress: randomLocallyAdministeredMac() });
      });
      const bundle = join(runtimeDir, BUNDLE_DIR);
      return new VzClone(id, vzImage, runtimeDir, bundle, record, options);
    },
  };
}

class VzClone implements Clone {
  /** Its bundle (an APFS clone) outlives vmhost: a second boot() starts from the disk as the guest left it. */
  readonly bootsAgain = true;
  private running?: RunningVM;
  private destroyed?: Promise<void>;

  constructor(
    readonly id: string,
    readonly image: VzImage,
    readonly runtimeDir: string,
    private readonly bundle: string,
    private readonly record: VmRecord,
    private readonly options: VzProviderOptions,
  ) {}

  async boot(boot: BootOptions): Promise<RunningVM> {
    if (this.destroyed) throw new MacvmError('MACVM_VM_STOPPED', `Clone ${this.id} was destroyed.`);
    const vmhost = this.options.vmhost ?? (await signedVmhost(this.options.home));
    this.running = await bootVz({
      clone: this,
      bundle: this.bundle,
      record: this.record,
      vmhost,
      boot,
      memoryBalloon: this.options.memoryBalloon ?? false,
      address: this.options.address,
      // Detached is the provider's (`macvm vm start`): every clone it makes outlives the starter.
      detached: this.options.detached ?? false,
      again: this.running !== undefined,
    });
    return this.running;
  }

  destroy(): Promise<void> {
    this.destroyed ??= stopAndRemoveClone(this.running, this.runtimeDir);
    return this.destroyed;
  }
}

async function signedVmhost(home: string | undefined): Promise<VmhostCommandLine> {
  const status = await ensureVmhostBinary({ home });
  if (!status.ok) {
    throw new MacvmError('MACVM_ENTITLEMENT_MISSING', `vmhost cannot run VMs: ${status.problem}`, {
      hint: 'Run `macvm doctor --fix` to make the ad-hoc-signed node copy with com.apple.security.virtualization.',
      details: { path: status.path },
    });
  }
  return vmhostCommandLine(status.path);
}
