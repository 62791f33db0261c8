import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { didYouMeanImage, nearestImageName } from '../home.js';
import type { GuestArch, GuestOS } from '../types.js';
import type { ImageInput } from '../image-listing.js';

/**
 * `image.json` in $MACVM_HOME/images/<name>/ for qemu images. Paths are relative to the
 * image dir. The disk is a read-only qcow2 base (mode 0444); clones are overlays on it.
 */
export interface QemuImageManifest {
  schema: 1;
  name: string;
  os: GuestOS;
  arch: GuestArch;
  createdAt: string;
  disk: string;
  /** Direct kernel boot (the test guest); absent for images that boot from their disk. */
  kernel?: string;
  /** Optional faster kernel for boots without a display (PVH vmlinux: no VGA text console, so never with display). */
  headlessKernel?: string;
  initrd?: string;
  /** Kernel command line, without console= (the provider adds the console it wires up). */
  append?: string;
  /** Machine type that boots this image fastest when no display is needed ('microvm' | 'q35' | 'pc'). */
  machine: string;
  /** Machine type to use when a display is wanted (microvm has none). */
  displayMachine: string;
  ssh: {
    user: string;
    /** Client private key, relative to the image dir (0600). */
    privateKey: string;
    /** The guest's pinned host key, OpenSSH public key line. */
    hostKey: string;
    port: number;
    /**
     * 'kernel-command-line': the guest takes root's only authorized key from the kernel
     * command line at every boot (authorized-key.ts), and the provider passes the login key's
     * public half there. Absent in older images, which keep the key baked into their disk.
     */
    authorizedKeyFrom?: 'kernel-command-line';
  };
  /** Printed on the serial console when the guest's SSH server listens (readiness lag). */
  readyMarker?: string;
  facts: Record<string, string>;
  /**
   * Every Debian package that went into the image, as fetched with `apt-get download`
   * (sorted by name). Absent in images built before it was recorded: read it as optional.
   */
  inputs?: ImageInput[];
}

export type { ImageInput };

export const MANIFEST_FILE = 'image.json';

/** The fields of image.json that name a file of the image (relative to its dir). */
export const IMAGE_FILE_FIELDS = ['disk', 'kernel', 'headlessKernel', 'initrd'] as const;

/**
 * A file name an image that travels through a registry may use: one plain component of
 * letters, digits, '.', '_', '-', not hidden. Stricter than a registry layer title has to be,
 * because these names end up in qemu's own option syntax (`-drive file=…`), where a comma
 * would start another option.
 */
export function isPortableImageFileName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 128 && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && name !== MANIFEST_FILE;
}

export async function readQemuManifest(imageDir: string, name: string): Promise<QemuImageManifest> {
  const path = join(imageDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const suggestion = await nearestImageName(name, dirname(imageDir), ['linux-test', 'linux-browser']);
    const hint = suggestion
      ? didYouMeanImage(suggestion)
      : name === 'linux-test' || name === 'linux-browser'
        ? `Build it with \`macvm image build ${name}\`.`
        : 'List images with `macvm image ls`.';
    // A missing image.json says nothing the message does not; any other failure (EACCES…) is kept.
    const cause = (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : error;
    throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `No image "${name}" in ${imageDir}.`, { hint, ...(cause ? { cause } : {}) });
  }
  try {
    const manifest = JSON.parse(text) as QemuImageManifest;
    if (manifest.schema !== 1 || !manifest.disk || !manifest.ssh?.hostKey) throw new Error('missing fields');
    return manifest;
  } catch (error) {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `The manifest ${path} is unreadable.`, {
      hint: `Rebuild the image (\`macvm image rm ${name}\` then build it again).`,
      cause: error,
    });
  }
}
