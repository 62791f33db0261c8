import { stat } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { QEMU_DISK_MEDIA_TYPE, QEMU_FILE_MEDIA_TYPE, QEMU_IMAGE_MEDIA_TYPE } from '../../oci/image-layout.js';
import type { PushPlan } from '../../oci/push.js';
import { AUTHORIZED_KEY_FROM_CMDLINE } from './authorized-key.js';
import { IMAGE_FILE_FIELDS, isPortableImageFileName, MANIFEST_FILE, readQemuManifest, type QemuImageManifest } from './manifest.js';
import { diskFacts } from './qemu-img.js';

/**
 * What `macvm image push` sends for a local qemu image: image.json — without the client
 * private key or its path — the qcow2 base as a disk (cut in pieces by the engine), and the
 * kernel, headless kernel and initrd as files, each titled with its plain file name.
 *
 * The trust model (README, "Trust model for qemu images in registries"): the pinned guest host
 * key travels, because the pin is what proves "this image" to whoever pulls it (its private
 * half is inside the disk, so anyone holding the image can act as its guest — as with any image
 * shared with its host key). The client key never travels: a pulled image gets a fresh one at
 * install (registry-install.ts), handed to the guest on the kernel command line at every boot.
 * So only images whose guest takes its key that way can be pushed; an older one would let the
 * pusher's key into every puller's clones.
 */
export type QemuPushPlan = PushPlan;

export async function qemuPushPlan(imageDir: string): Promise<QemuPushPlan> {
  const name = basename(imageDir);
  const manifest = await readQemuManifest(imageDir, name);
  refuseUnshareable(manifest, name);
  const files: Array<{ field: (typeof IMAGE_FILE_FIELDS)[number]; path: string; title: string }> = [];
  for (const field of IMAGE_FILE_FIELDS) {
    const value = manifest[field];
    if (!value) continue;
    const path = isAbsolute(value) ? value : join(imageDir, value);
    const title = basename(value);
    if (!isPortableImageFileName(title)) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${name}" names its ${field} "${value}"; a pushed image's files need plain names (letters, digits, . _ -).`, {
        hint: 'Rename the file and its entry in image.json, or rebuild the image.',
      });
    }
    if (files.some((file) => file.title === title)) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${name}" has two files named "${title}" (its ${field} and another); they would overwrite each other when pulled.`);
    }
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      throw new MacvmError('MACVM_IMAGE_CORRUPT', `Image "${name}" lacks its ${field} ${path}.`, { hint: `Rebuild it: \`macvm image build ${name} --force\`.` });
    }
    files.push({ field, path, title });
  }
  const disk = files.find((file) => file.field === 'disk')!;
  await refuseDependentDisk(disk.path, name);

  const shared = sharedManifest(manifest, Object.fromEntries(files.map((file) => [file.field, file.title])));
  return {
    kind: 'macvm-qemu',
    // The stub config's platform says what the guest runs on (OCI names), as Tart's does.
    platform: { architecture: manifest.arch === 'aarch64' ? 'arm64' : 'amd64', os: 'linux' },
    layers: [
      { type: 'file', mediaType: QEMU_IMAGE_MEDIA_TYPE, bytes: Buffer.from(`${JSON.stringify(shared, null, 2)}\n`), title: MANIFEST_FILE },
      { type: 'disk', mediaType: QEMU_DISK_MEDIA_TYPE, path: disk.path, title: disk.title },
      ...files.filter((file) => file !== disk).map((file) => ({ type: 'file' as const, mediaType: QEMU_FILE_MEDIA_TYPE, path: file.path, title: file.title })),
    ],
  };
}

/** The image.json that travels: file names only, and no client key — nor where it was. */
export function sharedManifest(manifest: QemuImageManifest, fileNames: Partial<Record<(typeof IMAGE_FILE_FIELDS)[number], string>>): Omit<QemuImageManifest, 'ssh'> & { ssh: Omit<QemuImageManifest['ssh'], 'privateKey'> } {
  const { privateKey: _privateKey, ...ssh } = manifest.ssh;
  const shared: Record<string, unknown> = { ...manifest, ssh };
  for (const field of IMAGE_FILE_FIELDS) {
    if (fileNames[field]) shared[field] = fileNames[field];
    else delete shared[field];
  }
  return shared as ReturnType<typeof sharedManifest>;
}

function refuseUnshareable(manifest: QemuImageManifest, name: string): void {
  if (!manifest.kernel) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `Image "${name}" boots from its disk, not a kernel macvm hands it, so macvm cannot give its clones a fresh login key; it is not pushed.`, {
      hint: 'Push images macvm builds (`macvm image build linux-test`), whose guests take their login key from the kernel command line.',
    });
  }
  if (manifest.ssh.authorizedKeyFrom !== AUTHORIZED_KEY_FROM_CMDLINE) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `Image "${name}" keeps its login key baked into its disk (its image.json predates the authorizedKeyFrom field), so your client key would log in to every clone of whoever pulls it; it is not pushed.`, {
      hint: `Rebuild it with this macvm (\`macvm image build ${name} --force\`): its guest then takes the login key from the kernel command line at each boot.`,
    });
  }
}

/** An overlay (a derived image's layer) is only half an image: its base stays on this host. */
async function refuseDependentDisk(disk: string, name: string): Promise<void> {
  const facts = await diskFacts(disk);
  if (facts.format !== 'qcow2') {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `Image "${name}"'s disk ${disk} is ${facts.format ?? 'of no known format'}, not qcow2.`, { hint: `Rebuild it: \`macvm image build ${name} --force\`.` });
  }
  if (facts.backingFile || facts.dataFile) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `Image "${name}"'s disk is a layer on ${facts.backingFile ?? facts.dataFile}, which would not travel with it; it is not pushed.`, {
      hint: 'Push the image it derives from (e.g. linux-test) instead; derived images are made again from it on the pulling host.',
    });
  }
}
