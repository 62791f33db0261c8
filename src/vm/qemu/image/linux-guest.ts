import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { messageOf } from '../../../errors.js';
import { writeFileAtomic } from '../../../util/atomic-write.js';
import { AUTHORIZED_KEY_FROM_CMDLINE } from '../authorized-key.js';
import { MANIFEST_FILE, type ImageInput, type QemuImageManifest } from '../manifest.js';
import { defaultDownloadsDir, type BuildProgress, type ImageBuildOptions } from './cached-build.js';
import { describePackages, downloadPackages, extractPackage, kernelRelease, resolveKernelPackage, type DebPackage } from './debs.js';
import { DISK_SIZE, makeRootDisk } from './disk.js';
import { kernelAppend, READY_MARKER } from './guest-files.js';
import { makeInitrd } from './initrd.js';
import { generateImageKeys } from './keys.js';
import { resolveModules } from './kernel-modules.js';
import { assembleRootfs } from './rootfs.js';
import { extractVmlinux } from './vmlinux.js';

/**
 * The steps of a minimal Linux guest made only from Debian packages (the linux-test
 * guest): kernel + initrd, busybox, dropbear, pinned keys, ext4 root → qcow2. A recipe
 * built on it (linux-browser) adds whole Debian packages and files to the root filesystem
 * through the hooks below; with no hooks the output is exactly linux-test's.
 */

const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';
/** Everything in the base guest comes from these Debian packages (plus the kernel). */
const GUEST_PACKAGES = ['busybox-static', 'dropbear-bin', 'openssh-sftp-server', 'libc6', 'libcrypt1', 'libtomcrypt1', 'libtommath1', 'libgmp10', 'zlib1g'];
/**
 * Drivers the initrd loads: virtio over PCI (q35) and MMIO (microvm), disk, network, RNG,
 * and the ACPI power button + evdev that busybox acpid listens on. ext4 is built in.
 */
const INITRD_MODULES = ['virtio_pci', 'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_rng', 'ext4', 'button', 'evdev'];

const FILES = { disk: 'disk.qcow2', vmlinux: 'vmlinux', bzImage: 'vmlinuz', initrd: 'initrd.img', privateKey: 'id_ed25519' } as const;

export interface ExtraPackages {
  /** The packages as described by apt (what was downloaded). */
  packages: DebPackage[];
  /** Their .deb files, in the same order. */
  debs: string[];
}

export interface LinuxGuestRecipe {
  name: string;
  recipe: string;
  /** More Debian packages for the root filesystem, whole; fetched in the same download as the base. */
  extraPackages?: (progress: (p: BuildProgress) => void) => Promise<string[]>;
  /** Facts about the extra packages, recorded in image.json and the guest's /etc/macvm-release. */
  extraFacts?: (extra: ExtraPackages) => Record<string, string>;
  /** Runs once the base root filesystem is assembled: put the extra packages and files in. */
  finishRootfs?: (context: { rootfs: string; work: string; extra: ExtraPackages; facts: Record<string, string>; progress: (p: BuildProgress) => void }) => Promise<void>;
  /** ext4 size for mkfs ('1G'); default the base guest's. */
  diskSize?: string;
}

export async function buildLinuxGuest(out: string, work: string, recipe: LinuxGuestRecipe, options: ImageBuildOptions, progress: (p: BuildProgress) => void): Promise<QemuImageManifest> {
  progress({ step: 'resolve packages', detail: KERNEL_META_PACKAGE, fraction: 0.02 });
  const kernelPackage = await resolveKernelPackage(KERNEL_META_PACKAGE);
  const release = kernelRelease(kernelPackage);
  const baseNames = [kernelPackage, ...GUEST_PACKAGES];
  const extraNames = (await recipe.extraPackages?.(progress)) ?? [];
  const packages: DebPackage[] = await describePackages([...new Set([...baseNames, ...extraNames])]);

  progress({ step: 'download', detail: `${packages.length} Debian packages`, fraction: 0.05 });
  const downloads = options.downloadsDir ?? defaultDownloadsDir(options.imageDir);
  const debs = await downloadPackages(downloads, packages, (names) => progress({ step: 'download', detail: `fetching ${names.length > 12 ? `${names.length} packages` : names.join(', ')}`, fraction: 0.1 }));
  const debOf = new Map(packages.map((p, index) => [p.name, debs[index]!]));

  const packageRoot = join(work, 'packages');
  for (const [index, name] of baseNames.entries()) {
    progress({ step: 'unpack', detail: name, fraction: 0.3 + (0.2 * index) / baseNames.length });
    await extractPackage(debOf.get(name)!, packageRoot);
  }
  const extraPackages = extraNames.map((name) => packages.find((p) => p.name === name)!);
  const extra: ExtraPackages = { packages: extraPackages, debs: extraPackages.map((p) => debOf.get(p.name)!) };

  progress({ step: 'keys', detail: 'client key and guest host key (ed25519)', fraction: 0.5 });
  const keys = await generateImageKeys({ clientKeyPath: join(out, FILES.privateKey), workDir: work });

  const version = (name: string) => packages.find((p) => p.name === name)?.version ?? 'unknown';
  const createdAt = new Date().toISOString();
  const facts: Record<string, string> = {
    recipe: recipe.recipe,
    kernel: release,
    kernelPackage: `${kernelPackage} ${version(kernelPackage)}`,
    busybox: version('busybox-static'),
    dropbear: version('dropbear-bin'),
    sftpServer: version('openssh-sftp-server'),
    libc: version('libc6'),
    ...recipe.extraFacts?.(extra),
    builtAt: createdAt,
  };

  progress({ step: 'root filesystem', detail: 'busybox, dropbear, sftp-server, boot scripts', fraction: 0.55 });
  const rootfs = join(work, 'rootfs');
  const assembled = await assembleRootfs({ packageRoot, rootfs, clientPublicKey: keys.clientPublicKey, dropbearHostKeyPath: keys.dropbearHostKeyPath, release: facts });
  facts.busyboxApplets = String(assembled.applets);
  await recipe.finishRootfs?.({ rootfs, work, extra, facts, progress });

  progress({ step: 'initrd', detail: 'virtio modules + busybox', fraction: 0.65 });
  const moduleRoot = join(packageRoot, 'lib/modules', release);
  const modules = await resolveModules(moduleRoot, INITRD_MODULES);
  facts.initrdModules = modules.map((m) => m.name).join(',');
  await writeFile(join(out, FILES.initrd), await makeInitrd({ busybox: join(packageRoot, 'bin/busybox'), modules }), { mode: 0o444 });

  progress({ step: 'kernel', detail: 'bzImage, and vmlinux for direct (PVH) boot', fraction: 0.7 });
  // The bzImage is what boots with a display: its real-mode setup tells the kernel about
  // the VGA text console. The unpacked vmlinux skips decompression under emulation
  // (~0.8 s of CPU per boot) but, booted by PVH, has no VGA console: headless only.
  const bzImage = await readFile(join(packageRoot, 'boot', `vmlinuz-${release}`));
  await writeFile(join(out, FILES.bzImage), bzImage, { mode: 0o444 });
  let headlessKernel: string | undefined;
  try {
    await writeFile(join(out, FILES.vmlinux), extractVmlinux(bzImage), { mode: 0o444 });
    headlessKernel = FILES.vmlinux;
    facts.headlessKernel = 'vmlinux (PVH entry)';
  } catch (error) {
    facts.headlessKernel = `none: ${messageOf(error)}`;
  }

  const diskSize = recipe.diskSize ?? DISK_SIZE;
  progress({ step: 'disk', detail: `ext4 root (${diskSize}) → qcow2`, fraction: 0.75 });
  await makeRootDisk({ rootfs, rawPath: join(work, 'disk.raw'), qcow2Path: join(out, FILES.disk), workDir: work, size: diskSize });

  const manifest: QemuImageManifest = {
    schema: 1,
    name: recipe.name,
    os: 'linux',
    arch: 'x86_64',
    createdAt,
    disk: FILES.disk,
    kernel: FILES.bzImage,
    ...(headlessKernel ? { headlessKernel } : {}),
    initrd: FILES.initrd,
    append: kernelAppend(await hostTscKhz()),
    machine: 'q35',
    displayMachine: 'q35',
    // The rcS reads root's authorized key from the kernel command line at every boot; the key
    // baked into the disk only serves boots by hand (without the parameter).
    ssh: { user: 'root', privateKey: FILES.privateKey, hostKey: keys.hostPublicKey, port: 22, authorizedKeyFrom: AUTHORIZED_KEY_FROM_CMDLINE },
    readyMarker: READY_MARKER,
    facts,
    inputs: imageInputs(packages),
  };
  // Written last: an image dir without image.json is never taken for a finished image.
  await writeFileAtomic(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
  return manifest;
}

/**
 * What went in, for image.json: name, version, architecture and SHA256 of each .deb. The
 * checksum is apt's, and downloadPackages has checked the file on disk against it.
 */
export function imageInputs(packages: readonly DebPackage[]): ImageInput[] {
  return packages
    .map(({ name, version, architecture, sha256 }) => ({ name, version, architecture, sha256 }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** os.cpus() reports speed 0 on some virtual hosts; /proc/cpuinfo still has "cpu MHz". */
async function hostTscKhz(): Promise<number | undefined> {
  const speed = cpus()[0]?.speed;
  if (speed) return speed * 1000;
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
  return mhz > 0 ? Math.round(mhz * 1000) : undefined;
}
