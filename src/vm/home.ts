import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { MacvmError } from '../errors.js';
import { didYouMean } from '../util/validate.js';

/**
 * MACVM_HOME holds images (`images/<name>/`) and runtime state (`run/<vm-id>/`,
 * `sessions/`, `slots/`). Default ~/.cache/macvm. Runtime dirs are private (0700):
 * they hold SSH keys, QMP sockets and console logs.
 */
export function macvmHome(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.MACVM_HOME?.trim();
  return configured ? resolve(configured) : join(homedir(), '.cache', 'macvm');
}

/** What an image name or VM id may be: one path segment of letters, digits, `.`, `_`, `-`, not starting with a dot. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Whether `name` can name a local image (or a VM): the one rule every provider and homePaths() apply. */
export function isImageName(name: string): boolean {
  return typeof name === 'string' && SAFE_NAME.test(name);
}

/**
 * `name` as one directory under MACVM_HOME, or MACVM_BAD_ARGUMENT: a name is typed on command
 * lines (`macvm image rm`, `vm rm`) and becomes a path that gets deleted, so `..`, `x/../..`,
 * an empty name or an absolute path must never reach join().
 */
export function checkedName(kind: 'image' | 'VM', name: string): string {
  if (isImageName(name)) return name;
  const what = kind === 'image' ? 'an image name' : 'a VM id';
  throw new MacvmError('MACVM_BAD_ARGUMENT', `${JSON.stringify(name)} is not ${what}: use letters, digits, ".", "_" and "-" only, starting with a letter or digit.`, {
    hint: kind === 'image' ? 'See `macvm image ls` for the names there are.' : 'See `macvm vm ls` for the ids there are.',
    details: { [kind === 'image' ? 'image' : 'id']: name },
  });
}

/**
 * The image in `imagesDir` (or among `alsoKnown`, e.g. recipe names not built yet) whose name is
 * closest to a mistyped `name`, if one is close enough to be a typo.
 */
export async function nearestImageName(name: string, imagesDir: string, alsoKnown: readonly string[] = []): Promise<string | undefined> {
  const present = await readdir(imagesDir).catch(() => [] as string[]);
  return didYouMean(name, [...new Set([...present, ...alsoKnown])].filter((candidate) => candidate !== name && isImageName(candidate)));
}

/** The hint for a mistyped image name whose nearest image is `suggestion`. */
export function didYouMeanImage(suggestion: string): string {
  return `Did you mean "${suggestion}"? \`macvm image ls\` lists the images.`;
}

/** MACVM_IMAGE_NOT_FOUND for a local image name, with the nearest image there is as a did-you-mean. */
export async function imageNotFound(name: string, home = macvmHome()): Promise<MacvmError> {
  const suggestion = await nearestImageName(name, join(home, 'images'));
  return new MacvmError('MACVM_IMAGE_NOT_FOUND', `No image "${name}".`, {
    hint: suggestion ? didYouMeanImage(suggestion) : 'See `macvm image ls`.',
    details: { image: name },
  });
}

export const homePaths = (home = macvmHome()) => ({
  home,
  images: join(home, 'images'),
  image: (name: string) => join(home, 'images', checkedName('image', name)),
  run: join(home, 'run'),
  vm: (id: string) => join(home, 'run', checkedName('VM', id)),
  sessions: join(home, 'sessions'),
  slots: join(home, 'slots'),
  downloads: join(home, 'downloads'),
});

/**
 * A directory of mode 0700: created so, or tightened when it exists (and is ours) with wider
 * modes. A path it cannot make or use is MACVM_CONFIG_INVALID: every such directory lives
 * under MACVM_HOME (or the image dir a build was given), so the fix is that setting.
 */
export async function ensurePrivateDir(path: string): Promise<string> {
  try {
    await makeDirs(path, 0o700);
    const info = await stat(path);
    if (!info.isDirectory()) throw Object.assign(new Error(`${path} is not a directory`), { code: 'ENOTDIR', path });
    if ((info.mode & 0o077) !== 0 && info.uid === process.getuid?.()) await chmod(path, 0o700);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code || !UNUSABLE.includes(code)) throw error;
    throw new MacvmError('MACVM_CONFIG_INVALID', `${path} is not a directory macvm can use (${code}).`, {
      hint: UNUSABLE_HINT,
      details: { path, code },
      cause: error,
    });
  }
  return path;
}

const UNUSABLE = ['ENOTDIR', 'EEXIST', 'EACCES', 'EPERM', 'EROFS', 'ENOENT'];
const UNUSABLE_HINT = 'Point MACVM_HOME at a writable directory of your own (default ~/.cache/macvm), or fix that path.';

/**
 * mkdir -p, a level at a time. Node 20's own recursive mkdir never returns for a path under
 * /proc (mkdir there fails with ENOENT under a parent that exists, and it retries the parent
 * forever), so a MACVM_HOME of /proc/x hung every command instead of failing.
 */
async function makeDirs(path: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let at = resolve(path); ; at = dirname(at)) {
    const exists = await stat(at).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return false;
        throw error;
      },
    );
    if (exists || dirname(at) === at) break;
    missing.push(at);
  }
  for (const dir of missing.reverse()) {
    await mkdir(dir, { mode }).catch((error: NodeJS.ErrnoException) => {
      // Made meanwhile by another runner process: fine, the stat after this checks what it is.
      if (error.code !== 'EEXIST') throw error;
    });
  }
}

/**
 * MACVM_HOME and its images/ dir, both 0700. An image holds secrets: the guest's SSH host
 * private key (inside disk.qcow2) and the client's private key; a local user who could read
 * them could impersonate the guest or log in to it. Homes made by older versions (0755) are
 * tightened here, on every build, clone and image use.
 */
export async function ensurePrivateHome(home = macvmHome()): Promise<string> {
  try {
    await ensurePrivateDir(home);
    await ensurePrivateDir(homePaths(home).images);
  } catch (error) {
    if (!(error instanceof MacvmError) || error.code !== 'MACVM_CONFIG_INVALID') throw error;
    const code = error.details.code as string | undefined;
    throw new MacvmError('MACVM_CONFIG_INVALID', `macvm's home ${home} is not a directory it can use (${code}).`, {
      hint: UNUSABLE_HINT,
      details: { home, code },
      cause: error.cause,
    });
  }
  return home;
}
