import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { MacvmError, messageOf } from '../../../errors.js';
import { writeFileAtomic } from '../../../util/atomic-write.js';
import { homePaths } from '../../home.js';
import { MANIFEST_FILE, readQemuManifest, type QemuImageManifest } from '../manifest.js';
import { describePackages, downloadPackages, extractPackage, kernelRelease, resolveKernelPackage, type DebPackage } from './debs.js';
import { makeRootDisk } from './disk.js';
import { kernelAppend, READY_MARKER } from './guest-files.js';
import { aptInstallLine, missingHostTools } from './host-tools.js';
import { makeInitrd } from './initrd.js';
import { generateImageKeys } from './keys.js';
import { resolveModules } from './kernel-modules.js';
import { assembleRootfs } from './rootfs.js';
import { withBuildLock } from './build-lock.js';
import { extractVmlinux } from './vmlinux.js';

export { missingHostTools } from './host-tools.js';

/** Printed by the CLI as the build goes. */
export interface BuildProgress {
  step: string;
  detail?: string;
  fraction?: number;
}

export interface BuildLinuxTestOptions {
  /** e.g. $MACVM_HOME/images/linux-test */
  imageDir: string;
  /** Rebuild even when an intact image is there. */
  force?: boolean;
  onProgress?: (p: BuildProgress) => void;
  arch?: 'x86_64';
  /** Where .deb files are cached; default: `downloads/` beside `images/`, else $MACVM_HOME/downloads. */
  downloadsDir?: string;
}

/**
 * Bumped whenever what goes into the guest changes, so cached images of an older
 * recipe are rebuilt instead of silently reused.
 */
export const LINUX_TEST_RECIPE = '4';

const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';
/** Everything in the guest comes from these Debian packages (plus the kernel). */
const GUEST_PACKAGES = ['busybox-static', 'dropbear-bin', 'openssh-sftp-server', 'libc6', 'libcrypt1', 'libtomcrypt1', 'libtommath1', 'libgmp10', 'zlib1g'];
/**
 * Drivers the initrd loads: virtio over PCI (q35) and MMIO (microvm), disk, network, RNG,
 * and the ACPI power button + evdev that busybox acpid listens on. ext4 is built in.
 */
const INITRD_MODULES = ['virtio_pci', 'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_rng', 'ext4', 'button', 'evdev'];

const FILES = { disk: 'disk.qcow2', vmlinux: 'vmlinux', bzImage: 'vmlinuz', initrd: 'initrd.img', privateKey: 'id_ed25519' } as const;

export async function buildLinuxTestImage(options: BuildLinuxTestOptions): Promise<QemuImageManifest> {
  const { imageDir } = options;
  const progress = options.onProgress ?? (() => {});
  const arch = options.arch ?? 'x86_64';
  if (arch !== 'x86_64') {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `linux-test is built for x86_64 only, not ${String(arch)}.`);
  }
  if (!options.force) {
    const existing = await intactImage(imageDir);
    if (existing) {
      progress({ step: 'cached', detail: `linux-test is already built in ${imageDir}`, fraction: 1 });
      return existing;
    }
  }

  progress({ step: 'check host tools', fraction: 0 });
  const missing = await missingHostTools();
  if (missing.tools.length > 0) {
    const line = aptInstallLine(missing.aptPackages);
    throw new MacvmError('MACVM_HOST_TOOL_MISSING', `Building linux-test needs ${missing.tools.join(', ')}. Install them with:\n  ${line}`, {
      hint: `Run \`${line}\` as root (or \`macvm doctor --fix\`), then build again.`,
      details: { tools: missing.tools, aptPackages: missing.aptPackages },
    });
  }

  const parent = dirname(imageDir);
  await mkdir(parent, { recursive: true });
  return withBuildLock(
    imageDir,
    (pid) => progress({ step: 'wait', detail: `another build of linux-test is running (pid ${pid})` }),
    async () => {
      // The other build may have finished the image while we waited.
      const done = options.force ? undefined : await intactImage(imageDir);
      if (done) {
        progress({ step: 'cached', detail: `linux-test is already built in ${imageDir}`, fraction: 1 });
        return done;
      }
      const temp = join(parent, `.${basename(imageDir)}.building-${process.pid}-${randomBytes(4).toString('hex')}`);
      const out = join(temp, 'image');
      const work = join(temp, 'work');
      await mkdir(out, { recursive: true, mode: 0o755 });
      await mkdir(work, { recursive: true, mode: 0o700 });
      try {
        const manifest = await buildInto(out, work, options, progress);
        await rm(work, { recursive: true, force: true });
        progress({ step: 'install', detail: imageDir, fraction: 0.98 });
        await moveIntoPlace(out, imageDir);
        progress({ step: 'done', detail: imageDir, fraction: 1 });
        return manifest;
      } finally {
        await rm(temp, { recursive: true, force: true });
      }
    },
  );
}

async function buildInto(out: string, work: string, options: BuildLinuxTestOptions, progress: (p: BuildProgress) => void): Promise<QemuImageManifest> {
  progress({ step: 'resolve packages', detail: KERNEL_META_PACKAGE, fraction: 0.02 });
  const kernelPackage = await resolveKernelPackage(KERNEL_META_PACKAGE);
  const release = kernelRelease(kernelPackage);
  const packages: DebPackage[] = await describePackages([kernelPackage, ...GUEST_PACKAGES]);

  progress({ step: 'download', detail: `${packages.length} Debian packages`, fraction: 0.05 });
  const downloads = options.downloadsDir ?? defaultDownloadsDir(options.imageDir);
  const debs = await downloadPackages(downloads, packages, (names) => progress({ step: 'download', detail: `fetching ${names.join(', ')}`, fraction: 0.1 }));

  const packageRoot = join(work, 'packages');
  for (const [index, deb] of debs.entries()) {
    progress({ step: 'unpack', detail: packages[index]!.name, fraction: 0.3 + (0.2 * index) / debs.length });
    await extractPackage(deb, packageRoot);
  }

  progress({ step: 'keys', detail: 'client key and guest host key (ed25519)', fraction: 0.5 });
  const keys = await generateImageKeys({ clientKeyPath: join(out, FILES.privateKey), workDir: work });

  const version = (name: string) => packages.find((p) => p.name === name)?.version ?? 'unknown';
  const createdAt = new Date().toISOString();
  const facts: Record<string, string> = {
    recipe: LINUX_TEST_RECIPE,
    kernel: release,
    kernelPackage: `${kernelPackage} ${version(kernelPackage)}`,
    busybox: version('busybox-static'),
    dropbear: version('dropbear-bin'),
    sftpServer: version('openssh-sftp-server'),
    libc: version('libc6'),
    builtAt: createdAt,
  };

  progress({ step: 'root filesystem', detail: 'busybox, dropbear, sftp-server, boot scripts', fraction: 0.55 });
  const rootfs = join(work, 'rootfs');
  const assembled = await assembleRootfs({ packageRoot, rootfs, clientPublicKey: keys.clientPublicKey, dropbearHostKeyPath: keys.dropbearHostKeyPath, release: facts });
  facts.busyboxApplets = String(assembled.applets);

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

  progress({ step: 'disk', detail: 'ext4 root → qcow2', fraction: 0.75 });
  await makeRootDisk({ rootfs, rawPath: join(work, 'disk.raw'), qcow2Path: join(out, FILES.disk), workDir: work });

  const manifest: QemuImageManifest = {
    schema: 1,
    name: 'linux-test',
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
    ssh: { user: 'root', privateKey: FILES.privateKey, hostKey: keys.hostPublicKey, port: 22 },
    readyMarker: READY_MARKER,
    facts,
  };
  // Written last: an image dir without image.json is never taken for a finished image.
  await writeFileAtomic(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o644 });
  return manifest;
}

function defaultDownloadsDir(imageDir: string): string {
  const imagesDir = dirname(imageDir);
  return basename(imagesDir) === 'images' ? join(dirname(imagesDir), 'downloads') : homePaths().downloads;
}

/** os.cpus() reports speed 0 on some virtual hosts; /proc/cpuinfo still has "cpu MHz". */
async function hostTscKhz(): Promise<number | undefined> {
  const speed = cpus()[0]?.speed;
  if (speed) return speed * 1000;
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
  return mhz > 0 ? Math.round(mhz * 1000) : undefined;
}

/** The manifest of a complete, current-recipe image in `imageDir`, or undefined. */
export async function intactImage(imageDir: string): Promise<QemuImageManifest | undefined> {
  let manifest: QemuImageManifest;
  try {
    manifest = await readQemuManifest(imageDir, basename(imageDir));
  } catch {
    return undefined;
  }
  if (manifest.facts?.recipe !== LINUX_TEST_RECIPE) return undefined;
  for (const file of [manifest.disk, manifest.kernel, manifest.initrd, manifest.ssh.privateKey, manifest.headlessKernel ?? manifest.disk]) {
    if (!file) return undefined;
    const info = await stat(join(imageDir, file)).catch(() => undefined);
    if (!info?.isFile() || info.size === 0) return undefined;
  }
  return manifest;
}

/**
 * Renames the finished build over `imageDir`. An old image is first renamed aside and
 * removed after, so the window in which no image is there is two renames long.
 */
async function moveIntoPlace(built: string, imageDir: string): Promise<void> {
  const old = join(dirname(imageDir), `.${basename(imageDir)}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
  const hadOld = await rename(imageDir, old).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
  await rename(built, imageDir);
  if (hadOld) await rm(old, { recursive: true, force: true });
}
