import { randomBytes } from 'node:crypto';
import { stopAndRemoveClone } from '../clone-teardown.js';
import { access, readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { MacvmError, messageOf } from '../../errors.js';
import { configuredHostKey } from '../credentials.js';
import { ensurePrivateDir, ensurePrivateHome, isImageName, macvmHome, homePaths } from '../home.js';
import { createCloneRuntimeDir, newVmRecord, type VmRecord } from '../runtime-dir.js';
import type { Clone, CloneOptions, Image, Provider, SshCredentials } from '../types.js';
import { isRegistryReference } from '../../oci/reference.js';
import { readQemuManifest, type QemuImageManifest } from './manifest.js';
import { AUTHORIZED_KEY_FROM_CMDLINE, publicKeyOfClientKey } from './authorized-key.js';
import { createOverlay, virtualSizeBytes } from './qemu-img.js';
import { bootQemu, type QemuBootExtras } from './boot.js';
import { resolveQemuSettings } from './settings.js';

/** The clone's copy-on-write disk, an overlay on the image's read-only base. */
const OVERLAY_FILE = 'disk.qcow2';

export interface QemuImage extends Image {
  provider: 'qemu';
  manifest: QemuImageManifest;
  /**
   * For an image whose guest takes its authorized key from the kernel command line: the
   * public line of the key this host logs in with, passed to the guest at every boot.
   */
  authorizedKey?: string;
}

export interface QemuProviderOptions {
  home?: string;
  /** Keep the VM process running after this process exits (`macvm vm start`). */
  detached?: boolean;
  /** The config's `qemu` section (accelerator, binary); MACVM_ACCEL / MACVM_QEMU_BINARY override it. */
  settings?: Record<string, unknown>;
}

export function createQemuProvider(options: QemuProviderOptions = {}): Provider {
  const home = options.home ?? macvmHome();
  const settings = resolveQemuSettings(options.settings);
  const logins = (options.settings?.images ?? {}) as Record<string, Partial<SshCredentials>>;
  return {
    name: 'qemu',
    // 'none' first: a test guest reaches the host only through what the spec exposes.
    networkModes: ['none', 'nat'],
    async prepare(imageRef: string): Promise<QemuImage> {
      const dir = await imageDir(imageRef, home);
      const manifest = await readQemuManifest(dir, imageRef);
      // Images built by older versions sit in 0755 dirs: keep the keys in them private.
      await ensurePrivateHome(home);
      await ensurePrivateDir(dir);
      const resolve = (path: string) => (isAbsolute(path) ? path : join(dir, path));
      for (const file of [manifest.disk, manifest.kernel, manifest.headlessKernel, manifest.initrd, manifest.ssh.privateKey]) {
        if (!file) continue;
        try {
          await access(resolve(file));
        } catch {
          throw new MacvmError('MACVM_IMAGE_CORRUPT', `Image "${imageRef}" lacks ${resolve(file)}.`, {
            hint: `Rebuild it: \`macvm image build ${imageRef} --force\`.`,
          });
        }
      }
      const ssh = configuredLogin(imageRef, { user: manifest.ssh.user, privateKeyPath: resolve(manifest.ssh.privateKey), hostKey: manifest.ssh.hostKey }, logins[imageRef]);
      // The key that logs in is the one the guest is told to let in (a configured key file included).
      const authorizedKey =
        manifest.ssh.authorizedKeyFrom === AUTHORIZED_KEY_FROM_CMDLINE ? await publicKeyOfClientKey(ssh.privateKeyPath ?? resolve(manifest.ssh.privateKey)) : undefined;
      return {
        name: imageRef,
        provider: 'qemu',
        location: dir,
        os: manifest.os,
        arch: manifest.arch,
        ssh,
        ...(authorizedKey ? { authorizedKey } : {}),
        facts: manifest.facts,
        manifest: {
          ...manifest,
          disk: resolve(manifest.disk),
          kernel: manifest.kernel && resolve(manifest.kernel),
          headlessKernel: manifest.headlessKernel && resolve(manifest.headlessKernel),
          initrd: manifest.initrd && resolve(manifest.initrd),
        },
      };
    },

    async clone(image: Image, cloneOptions: CloneOptions): Promise<Clone> {
      const qemuImage = image as QemuImage;
      if (!qemuImage.manifest) throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${image.name}" was not prepared by the qemu provider.`);
      const id = newVmId();
      // The record goes down before anything else exists, so a crash from here on leaves a
      // tagged dir that the reaper and `macvm gc` recognise.
      const record = newVmRecord({
        id,
        session: cloneOptions.session.id,
        provider: 'qemu',
        image: image.name,
        detached: options.detached,
      });
      const runtimeDir = await createCloneRuntimeDir(record, cloneOptions.deadline, async (dir) => {
        const baseBytes = await virtualSizeBytes(qemuImage.manifest.disk);
        const grow = cloneOptions.diskGiB !== undefined && cloneOptions.diskGiB * 2 ** 30 > baseBytes ? cloneOptions.diskGiB : undefined;
        await createOverlay(qemuImage.manifest.disk, join(dir, OVERLAY_FILE), grow);
      });
      const overlay = join(runtimeDir, OVERLAY_FILE);
      return new QemuClone(id, qemuImage, runtimeDir, overlay, record, { settings, home, detached: options.detached });
    },
  };
}

/**
 * Where an image's files are: MACVM_HOME/images/<name> for a built one; for a registry
 * reference (`registry.example:5000/team/linux-test:2026-11`), the pulled image in the cache,
 * pulled now when it is not there yet.
 */
async function imageDir(imageRef: string, home: string): Promise<string> {
  if (isRegistryReference(imageRef)) {
    const { registryImage } = await import('../registry-images.js');
    const { installPulledQemuImage } = await import('./registry-install.js');
    const pulled = await registryImage(imageRef, { home, kind: 'macvm-qemu', prepareInstall: async (staging) => void (await installPulledQemuImage(staging)) });
    return pulled.dir;
  }
  if (!isImageName(imageRef)) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `"${imageRef}" is not an image name (letters, digits, . _ - only) or a registry reference (host[:port]/repository[:tag]).`);
  }
  return homePaths(home).image(imageRef);
}

class QemuClone implements Clone {
  /** Its qcow2 overlay outlives qemu: a second boot() starts from the disk as the guest left it. */
  readonly bootsAgain = true;
  private destroyed?: Promise<void>;
  private running?: Awaited<ReturnType<typeof bootQemu>>;

  constructor(
    readonly id: string,
    readonly image: QemuImage,
    readonly runtimeDir: string,
    private readonly overlay: string,
    private readonly record: VmRecord,
    private readonly host: Pick<QemuBootExtras, 'settings' | 'home' | 'detached'>,
  ) {}

  async boot(options: Parameters<Clone['boot']>[0]) {
    if (this.destroyed) throw new MacvmError('MACVM_VM_STOPPED', `Clone ${this.id} was destroyed.`);
    this.running = await bootQemu(this, this.overlay, this.record, { ...options, ...this.host });
    return this.running;
  }

  destroy(): Promise<void> {
    this.destroyed ??= stopAndRemoveClone(this.running, this.runtimeDir);
    return this.destroyed;
  }
}

/**
 * The config's `images.<name>.ssh` over what the image's manifest records: a user, a key file or
 * password, and a pinned host key, which the guest must then present (else MACVM_HOST_KEY_MISMATCH).
 */
function configuredLogin(imageRef: string, manifest: SshCredentials, configured: Partial<SshCredentials> | undefined): SshCredentials {
  if (!configured) return manifest;
  let hostKey = manifest.hostKey;
  if (configured.hostKey !== undefined) {
    const key = `images.${imageRef}.ssh.hostKey`;
    hostKey = configuredHostKey(configured.hostKey, key, `The image's own key is in its image.json (ssh.hostKey); leave ${key} out to use it.`);
  }
  return {
    user: configured.user ?? manifest.user,
    // A configured password alone replaces the image's key; a key file replaces it too.
    privateKeyPath: configured.privateKeyPath ?? (configured.password !== undefined ? undefined : manifest.privateKeyPath),
    ...(configured.password !== undefined ? { password: configured.password } : {}),
    hostKey,
  };
}

export function newVmId(): string {
  return `macvm-${randomBytes(4).toString('hex')}`;
}

/** Reads the console log of a runtime dir (for errors and `vm logs`). */
export async function readConsoleLog(runtimeDir: string): Promise<string> {
  try {
    return await readFile(join(runtimeDir, 'console.log'), 'utf8');
  } catch {
    return '';
  }
}
