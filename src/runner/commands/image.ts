import { createHash } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { homePaths } from '../../vm/home.js';
import { readQemuManifest, type ImageInput } from '../../vm/qemu/manifest.js';
import { BUNDLE_FILES, readBundleConfig } from '../../vm/vz/bundle-config.js';
import { buildLinuxBrowserImage } from '../../vm/qemu/image/build-linux-browser.js';
import { buildLinuxTestImage } from '../../vm/qemu/image/build-linux-test.js';
import { listRuntimeDirs } from '../../vm/runtime-dir.js';
import type { Command } from './command.js';
import { parseCommandArgs, table, writeJson } from './args.js';
import { progressPrinter } from './progress-printer.js';

/** Images macvm can build itself. macOS images come from `macvm image create` (vz) or `tart pull`. */
const RECIPES: Record<string, typeof buildLinuxTestImage> = {
  'linux-test': buildLinuxTestImage,
  'linux-browser': buildLinuxBrowserImage,
};

export const imageLsCommand: Command = {
  path: ['image', 'ls'],
  summary: 'List local images',
  help: `Usage: macvm image ls [--json]

Lists the images under MACVM_HOME/images — qemu images and vz bundles made by
\`macvm image create\` — with their OS, architecture and size on disk. Tart's own images:
\`tart list\`.

INPUTS: for images macvm built from Debian packages, how many .debs went in and a short
digest of their names, versions and SHA256s (equal digests: the same inputs). --json
lists every one under \`inputs\` (name, version, architecture, sha256 of the .deb).`,
  async run({ argv, stdout }) {
    const { values } = parseCommandArgs('image ls', argv, { json: { type: 'boolean' } }, false);
    const images = await listImages();
    if (values.json) {
      writeJson(stdout, images);
      return 0;
    }
    if (images.length === 0) {
      stdout.write('No images. Build the test guest with `macvm image build linux-test`.\n');
      return 0;
    }
    const rows = [['NAME', 'PROVIDER', 'OS', 'ARCH', 'DISK', 'CREATED', 'INPUTS', 'STATUS']];
    for (const image of images) {
      const inputs = image.inputs ? `${image.inputs.length} debs ${inputsDigest(image.inputs)}` : '-';
      rows.push([image.name, image.provider ?? '?', image.os ?? '?', image.arch ?? '?', image.diskMiB === undefined ? '?' : `${image.diskMiB} MiB`, image.createdAt?.slice(0, 19) ?? '?', inputs, image.status]);
    }
    stdout.write(table(rows));
    return 0;
  },
};

export const imageBuildCommand: Command = {
  path: ['image', 'build'],
  summary: 'Build an image from a recipe',
  help: `Usage: macvm image build <recipe> [--force] [--json]

Recipes:
  linux-test   A minimal Linux guest made only from Debian packages (kernel, busybox,
               dropbear): boots to SSH in seconds even without KVM. Used by the tests
               and the example specs on Linux hosts.
  linux-browser
               linux-test plus Debian's chromium and chromium-driver with their
               dependency closure and fonts, for vm.browser({ browserName: 'chrome' })
               in a real VM (~230 MiB of downloads; run it with 2 vCPUs / 2 GiB).

The build is cached: with an intact image it does nothing unless --force is given.`,
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('image build', argv, { force: { type: 'boolean' }, json: { type: 'boolean' } });
    const name = positionals[0];
    const recipe = name ? RECIPES[name] : undefined;
    if (!name || !recipe) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm image build: ${name ? `no recipe "${name}"` : 'which recipe?'}; known: ${Object.keys(RECIPES).join(', ')}.`, {
        hint: 'macOS images are made with `macvm image create <name> --ipsw latest` (vz) or pulled with `tart pull`.',
      });
    }
    const started = Date.now();
    const progress = progressPrinter(stderr, { quiet: values.json });
    const manifest = await recipe({ imageDir: homePaths().image(name), force: values.force, onProgress: progress.update });
    progress.done();
    if (values.json) writeJson(stdout, manifest);
    else stdout.write(`${name} ready (${((Date.now() - started) / 1000).toFixed(1)}s) in ${homePaths().image(name)}\n`);
    return 0;
  },
};

export const imageRmCommand: Command = {
  path: ['image', 'rm'],
  summary: 'Remove a local image',
  help: `Usage: macvm image rm <name>... [--force]

Deletes the image. Refuses while clones of it exist (they read from its disk) unless --force.`,
  async run({ argv, stdout }) {
    const { values, positionals } = parseCommandArgs('image rm', argv, { force: { type: 'boolean' } });
    if (positionals.length === 0) throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm image rm: which image?');
    const clones = await listRuntimeDirs();
    for (const name of positionals) {
      const dir = homePaths().image(name);
      if (!(await exists(dir))) throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `No image "${name}".`, { hint: 'See `macvm image ls`.' });
      const users = clones.filter((c) => c.record?.image === name);
      if (users.length > 0 && !values.force) {
        throw new MacvmError('MACVM_BAD_ARGUMENT', `Image "${name}" is in use by ${users.map((u) => u.id).join(', ')}.`, {
          hint: 'Remove those VMs first (`macvm vm rm <id>`), or pass --force.',
        });
      }
      await rm(dir, { recursive: true, force: true });
      stdout.write(`${name} removed\n`);
    }
    return 0;
  },
};

interface ImageListing {
  name: string;
  dir: string;
  /** Which provider boots it; unknown for a folder that is neither kind. */
  provider?: 'qemu' | 'vz';
  status: 'ok' | 'corrupt';
  os?: string;
  arch?: string;
  createdAt?: string;
  diskMiB?: number;
  /** The .debs a built qemu image was made from (image.json `inputs`); absent for older builds and other images. */
  inputs?: ImageInput[];
}

/** 12 hex digits over every input's name, version and sha256: equal for the same inputs. */
export function inputsDigest(inputs: readonly ImageInput[]): string {
  const lines = inputs.map((i) => `${i.name} ${i.version} ${i.architecture} ${i.sha256}\n`).sort();
  return createHash('sha256').update(lines.join('')).digest('hex').slice(0, 12);
}

async function listImages(): Promise<ImageListing[]> {
  const root = homePaths().images;
  let names: string[] = [];
  try {
    names = (await readdir(root)).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
  return Promise.all(names.sort().map((name) => describeImage(name, join(root, name))));
}

/** A qemu image (image.json) or a vz bundle (Tart's config.json, from `macvm image create`). */
async function describeImage(name: string, dir: string): Promise<ImageListing> {
  if (await exists(join(dir, BUNDLE_FILES.config))) {
    try {
      const config = await readBundleConfig(dir);
      const disk = await stat(join(dir, BUNDLE_FILES.disk));
      const created = await stat(join(dir, BUNDLE_FILES.config));
      return {
        name,
        dir,
        provider: 'vz',
        status: 'ok',
        os: config.os === 'darwin' ? 'macos' : config.os,
        arch: config.arch === 'arm64' ? 'aarch64' : 'x86_64',
        createdAt: created.mtime.toISOString(),
        diskMiB: allocatedMiB(disk),
      };
    } catch {
      return { name, dir, provider: 'vz', status: 'corrupt' };
    }
  }
  try {
    const manifest = await readQemuManifest(dir, name);
    const disk = await stat(join(dir, manifest.disk));
    return {
      name,
      dir,
      provider: 'qemu',
      status: 'ok',
      os: manifest.os,
      arch: manifest.arch,
      createdAt: manifest.createdAt,
      diskMiB: allocatedMiB(disk),
      ...(Array.isArray(manifest.inputs) ? { inputs: manifest.inputs } : {}),
    };
  } catch {
    return { name, dir, status: 'corrupt' };
  }
}

/** Space the disk really takes (sparse and cloned files take less than their length). */
function allocatedMiB(disk: { blocks: number }): number {
  return Math.round((disk.blocks * 512) / 2 ** 20);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
