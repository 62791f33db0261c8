import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, posix } from 'node:path';
import { MacvmError } from '../../errors.js';
import { withFileLock } from '../../util/file-lock.js';
import { homePaths, isImageName, macvmHome } from '../home.js';
import type { LayerFiles } from '../image-layer.js';
import { runTool } from './image/run-tool.js';
import { MANIFEST_FILE, readQemuManifest, type QemuImageManifest } from './manifest.js';

/**
 * A derived image: a local qemu image plus some files, as a qcow2 layer on the image's
 * read-only base. It is an image like any other (`images/<name>/image.json`), so a clone of
 * it is the usual overlay — on the layer, whose backing file is the parent's base — and the
 * files are simply there in every clone, with nothing copied per clone.
 *
 * Made once per (parent image, files) on the host, without booting anything: the parent's
 * disk is expanded to a sparse raw file, debugfs writes the files into its ext4 root, and
 * `qemu-img convert -B` keeps only the clusters that differ from the base. The name carries
 * a key over the parent's manifest and disk and the files' identity, so a rebuilt parent or
 * other files give another name and a stale layer is never used; older layers of the same
 * parent and tag are removed when a new one is made. It is built in a temp dir under a lock
 * and renamed into place, so a killed build leaves no half-made image (the next build removes
 * its temp dir).
 */
export type { LayerFiles };

export interface DerivedImage {
  /** The image name to clone ("linux-test.node-v20.20.2-linux-x64-1a2b3c4d5e6f"). */
  name: string;
  /** Whether this call built it (false: it was there). */
  built: boolean;
}

export async function derivedImage(parent: string, layer: LayerFiles, options: { home?: string; onWait?: (pid: number) => void } = {}): Promise<DerivedImage> {
  const home = options.home ?? macvmHome();
  const parentDir = homePaths(home).image(parent);
  const manifest = await readQemuManifest(parentDir, parent);
  const parentDisk = resolveIn(parentDir, manifest.disk);
  const name = `${parent}.${layer.tag}-${await layerKey(parentDir, parentDisk, layer)}`;
  if (!isImageName(name)) throw new MacvmError('MACVM_BAD_ARGUMENT', `"${layer.tag}" does not make an image name (letters, digits, . _ - only).`);
  if (!posix.isAbsolute(layer.guestDir)) throw new MacvmError('MACVM_BAD_ARGUMENT', `The layer's guest dir must be absolute, not "${layer.guestDir}".`);
  const dir = homePaths(home).image(name);
  if (await exists(join(dir, MANIFEST_FILE))) return { name, built: false };

  const lock = join(homePaths(home).images, `.${name}.lock`);
  const onTimeout = (pid: number) => new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Another build of ${name} (pid ${pid}) has held ${lock} for too long.`, { hint: `Wait for it, or stop pid ${pid} and try again.` });
  return withFileLock(lock, { timeoutMs: 10 * 60_000, onTimeout, onWait: options.onWait }, async () => {
    if (await exists(join(dir, MANIFEST_FILE))) return { name, built: false }; // another process made it while we waited
    await removeSiblings(home, parent, layer.tag, name);
    const work = join(homePaths(home).images, `.${name}.building-${randomBytes(4).toString('hex')}`);
    await mkdir(work, { recursive: true, mode: 0o700 });
    try {
      const raw = join(work, 'root.raw');
      await runTool('expand the parent disk', 'qemu-img', ['convert', '-q', '-U', '-f', 'qcow2', '-O', 'raw', parentDisk, raw]);
      const script = join(work, 'add-files.debugfs');
      await writeFile(script, debugfsScript(layer));
      await runTool('write the layer files', 'debugfs', ['-w', '-f', script, raw]);
      await assertWritten(raw, layer);
      await runTool('check the root filesystem', 'e2fsck', ['-f', '-n', raw]);
      // Only clusters that differ from the base are stored; the base becomes the layer's backing file.
      await runTool('make the layer', 'qemu-img', ['convert', '-q', '-U', '-f', 'raw', '-O', 'qcow2', '-B', parentDisk, '-F', 'qcow2', raw, join(work, 'disk.qcow2')]);
      await rm(raw, { force: true });
      await chmod(join(work, 'disk.qcow2'), 0o444);
      await writeFile(join(work, MANIFEST_FILE), JSON.stringify(derivedManifest(manifest, parentDir, name, parent, layer), null, 2) + '\n', { mode: 0o644 });
      await rename(work, dir);
    } catch (error) {
      await rm(work, { recursive: true, force: true });
      throw error;
    }
    return { name, built: true };
  });
}

async function layerKey(parentDir: string, parentDisk: string, layer: LayerFiles): Promise<string> {
  const disk = await stat(parentDisk);
  const hash = createHash('sha256');
  // image.json records what went in and when it was built; the disk's identity catches a base replaced in place.
  hash.update(await readFile(join(parentDir, MANIFEST_FILE)));
  hash.update(`\n${disk.dev}:${disk.ino} ${disk.size} ${disk.mtimeMs}\n${layer.guestDir}\n${layer.identity}\n`);
  for (const file of layer.files) hash.update(`${file.relativePath} ${file.mode.toString(8)}\n`);
  return hash.digest('hex').slice(0, 12);
}

/** mkdir for every dir on the way (debugfs reports the ones that exist and goes on), then each file, root-owned. */
export function debugfsScript(layer: LayerFiles): string {
  const dirs = new Set<string>();
  const add = (path: string) => {
    for (let at = posix.dirname(path); at !== '/' && !dirs.has(at); at = posix.dirname(at)) dirs.add(at);
  };
  const targets = layer.files.map((file) => ({ ...file, guestPath: posix.join(layer.guestDir, file.relativePath) }));
  for (const file of targets) add(file.guestPath);
  const lines: string[] = [];
  for (const dir of [...dirs].sort((a, b) => a.length - b.length)) lines.push(`mkdir ${quote(dir)}`, `sif ${quote(dir)} mode 040755`, `sif ${quote(dir)} uid 0`, `sif ${quote(dir)} gid 0`);
  for (const file of targets) {
    lines.push(`write ${quote(file.hostPath)} ${quote(file.guestPath)}`, `sif ${quote(file.guestPath)} mode 0${(0o100000 | file.mode).toString(8)}`, `sif ${quote(file.guestPath)} uid 0`, `sif ${quote(file.guestPath)} gid 0`);
  }
  return lines.join('\n') + '\n';
}

function quote(path: string): string {
  if (/["\n]/.test(path)) throw new MacvmError('MACVM_BAD_ARGUMENT', `debugfs cannot take the path ${JSON.stringify(path)}.`);
  return `"${path}"`;
}

/** debugfs exits 0 even when a command fails: ask it for each file's size and compare. */
async function assertWritten(raw: string, layer: LayerFiles): Promise<void> {
  for (const file of layer.files) {
    const guestPath = posix.join(layer.guestDir, file.relativePath);
    const said = await runTool('check the layer files', 'debugfs', ['-R', `stat ${quote(guestPath)}`, raw]);
    const size = /Size:\s*(\d+)/.exec(said)?.[1];
    const expected = (await stat(file.hostPath)).size;
    if (size === undefined || Number(size) !== expected) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Writing ${file.hostPath} to ${guestPath} in the layer failed (${size === undefined ? 'not there' : `${size} of ${expected} bytes`}).`, {
        hint: 'The parent image may lack room (its root file system is 1 GiB); see the debugfs output above.',
      });
    }
  }
}

function derivedManifest(parent: QemuImageManifest, parentDir: string, name: string, parentName: string, layer: LayerFiles): QemuImageManifest {
  const absolute = (path: string | undefined) => path && resolveIn(parentDir, path);
  return {
    ...parent,
    name,
    createdAt: new Date().toISOString(),
    disk: 'disk.qcow2',
    kernel: absolute(parent.kernel),
    headlessKernel: absolute(parent.headlessKernel),
    initrd: absolute(parent.initrd),
    ssh: { ...parent.ssh, privateKey: resolveIn(parentDir, parent.ssh.privateKey) },
    facts: { ...parent.facts, derivedFrom: parentName, layer: `${layer.tag} in ${layer.guestDir}` },
  };
}

/**
 * Layers of the same parent and tag with another key (a rebuilt parent or another node made
 * them stale), and temp dirs of killed builds: ours (we hold our lock), and other keys' whose
 * lock is gone.
 */
async function removeSiblings(home: string, parent: string, tag: string, keep: string): Promise<void> {
  const images = homePaths(home).images;
  const prefix = `${parent}.${tag}-`;
  const entries = await readdir(images).catch(() => [] as string[]);
  for (const entry of entries) {
    const temp = /^\.(.+)\.building-[0-9a-f]+$/.exec(entry);
    const stale = temp
      ? temp[1]!.startsWith(prefix) && (temp[1] === keep || !entries.includes(`.${temp[1]}.lock`))
      : entry.startsWith(prefix) && entry !== keep;
    if (stale) await rm(join(images, entry), { recursive: true, force: true });
  }
}

function resolveIn(dir: string, path: string): string {
  return isAbsolute(path) ? path : join(dir, path);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
