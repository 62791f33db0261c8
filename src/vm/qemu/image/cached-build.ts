import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { ensurePrivateDir, homePaths } from '../../home.js';
import { readQemuManifest, type QemuImageManifest } from '../manifest.js';
import { withBuildLock } from './build-lock.js';
import { aptInstallLine, missingHostTools } from './host-tools.js';

/**
 * What every image recipe shares around its own build steps: return an intact image of
 * the current recipe untouched, stop early (with the exact apt-get line) when host tools
 * are missing, build under a lock in a temp dir beside the image, and rename the result
 * into place only once it is complete.
 */

/** Printed by the CLI as the build goes. */
export interface BuildProgress {
  step: string;
  detail?: string;
  fraction?: number;
}

export interface ImageBuildOptions {
  /** e.g. $MACVM_HOME/images/linux-test */
  imageDir: string;
  /** Rebuild even when an intact image is there. */
  force?: boolean;
  onProgress?: (p: BuildProgress) => void;
  arch?: 'x86_64';
  /** Where .deb files are cached; default: `downloads/` beside `images/`, else $MACVM_HOME/downloads. */
  downloadsDir?: string;
}

export interface RecipeIdentity {
  /** The recipe's name, also the image's default name: 'linux-test'. */
  name: string;
  /** Bumped whenever the recipe's output changes; stored in facts.recipe. */
  recipe: string;
}

/** `build` fills `out` (image files, image.json last) using `work` for scratch. */
export type BuildSteps = (out: string, work: string, progress: (p: BuildProgress) => void) => Promise<QemuImageManifest>;

export async function buildCachedImage(identity: RecipeIdentity, options: ImageBuildOptions, build: BuildSteps): Promise<QemuImageManifest> {
  const { imageDir } = options;
  const { name } = identity;
  const progress = options.onProgress ?? (() => {});
  const arch = options.arch ?? 'x86_64';
  if (arch !== 'x86_64') {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `${name} is built for x86_64 only, not ${String(arch)}.`);
  }
  if (!options.force) {
    const existing = await intactImage(imageDir, identity.recipe);
    if (existing) {
      progress({ step: 'cached', detail: `${name} is already built in ${imageDir}`, fraction: 1 });
      return existing;
    }
  }

  progress({ step: 'check host tools', fraction: 0 });
  const missing = await missingHostTools();
  if (missing.tools.length > 0) {
    const line = aptInstallLine(missing.aptPackages);
    throw new MacvmError('MACVM_HOST_TOOL_MISSING', `Building ${name} needs ${missing.tools.join(', ')}. Install them with:\n  ${line}`, {
      hint: `Run \`${line}\` as root (or \`macvm doctor --fix\`), then build again.`,
      details: { tools: missing.tools, aptPackages: missing.aptPackages },
    });
  }

  const parent = dirname(imageDir);
  // images/ and each image are private (0700): an image holds the guest's SSH host private key
  // (in disk.qcow2) and the client key. Under MACVM_HOME, the home is tightened too.
  if (basename(parent) === 'images') await ensurePrivateDir(dirname(parent));
  await ensurePrivateDir(parent);
  return withBuildLock(
    imageDir,
    (pid) => progress({ step: 'wait', detail: `another build of ${name} is running (pid ${pid})` }),
    async () => {
      // The other build may have finished the image while we waited.
      const done = options.force ? undefined : await intactImage(imageDir, identity.recipe);
      if (done) {
        progress({ step: 'cached', detail: `${name} is already built in ${imageDir}`, fraction: 1 });
        return done;
      }
      const temp = join(parent, `.${basename(imageDir)}.building-${process.pid}-${randomBytes(4).toString('hex')}`);
      const out = join(temp, 'image');
      const work = join(temp, 'work');
      await mkdir(out, { recursive: true, mode: 0o700 });
      await mkdir(work, { recursive: true, mode: 0o700 });
      try {
        const manifest = await build(out, work, progress);
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

export function defaultDownloadsDir(imageDir: string): string {
  const imagesDir = dirname(imageDir);
  return basename(imagesDir) === 'images' ? join(dirname(imagesDir), 'downloads') : homePaths().downloads;
}

/** The manifest of a complete image of `recipe` in `imageDir`, or undefined. */
export async function intactImage(imageDir: string, recipe: string): Promise<QemuImageManifest | undefined> {
  let manifest: QemuImageManifest;
  try {
    manifest = await readQemuManifest(imageDir, basename(imageDir));
  } catch {
    return undefined;
  }
  if (manifest.facts?.recipe !== recipe) return undefined;
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
