import { lstat, mkdir, readdir, readlink, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../../errors.js';

/**
 * Moves unpacked Debian packages (one directory tree) into an assembled root filesystem.
 *
 * - What the root filesystem already has wins: the base guest's busybox init, its config
 *   files and dropbear stay even when a package (systemd-sysv, mount…) ships the same path.
 * - Directories merge. A directory that is a symlink in the root filesystem (var/run →
 *   ../run, or an absolute one) is followed as the guest would follow it — relative to the
 *   root filesystem, never into the build host's own directories.
 * - Entries are renamed, not copied (both trees live in one build dir), so a whole
 *   subtree the root lacks moves in one step — unless something under it is to be left out.
 */
export interface MergeResult {
  /** Entries moved in (a moved directory counts once). */
  moved: number;
  /** Paths (relative, '/'-separated) the root already had, so the package's copy was dropped. */
  kept: string[];
  /** Paths of `skip` that the packages had, left out. */
  skipped: string[];
}

/** `skip`: relative paths ('usr/share/doc') left out, with everything under them. */
export async function mergeTree(source: string, root: string, skip: readonly string[] = []): Promise<MergeResult> {
  const result: MergeResult = { moved: 0, kept: [], skipped: [] };
  await mergeDir(source, root, '', root, skip, result);
  return result;
}

async function mergeDir(sourceDir: string, targetDir: string, prefix: string, root: string, skip: readonly string[], result: MergeResult): Promise<void> {
  for (const entry of await readdir(sourceDir, { withFileTypes: true })) {
    const relativePath = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (skip.includes(relativePath)) {
      result.skipped.push(relativePath);
      continue;
    }
    const from = join(sourceDir, entry.name);
    const to = join(targetDir, entry.name);
    const existing = await lstat(to).catch(() => undefined);
    const skipsInside = entry.isDirectory() && skip.some((path) => path.startsWith(`${relativePath}/`));
    if (!existing && !skipsInside) {
      await rename(from, to);
      result.moved++;
      continue;
    }
    if (!existing) {
      await mkdir(to, { mode: (await lstat(from)).mode & 0o7777 });
      await mergeDir(from, to, relativePath, root, skip, result);
      continue;
    }
    if (!entry.isDirectory()) {
      result.kept.push(relativePath);
      continue;
    }
    if (existing.isDirectory()) {
      await mergeDir(from, to, relativePath, root, skip, result);
      continue;
    }
    const resolved = existing.isSymbolicLink() ? await resolveInRoot(root, relativePath) : undefined;
    const info = resolved ? await lstat(resolved).catch(() => undefined) : undefined;
    if (resolved && !info) await mkdir(resolved, { recursive: true, mode: 0o755 });
    if (resolved && (!info || info.isDirectory())) {
      await mergeDir(from, resolved, relativePath, root, skip, result);
      continue;
    }
    throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `A package ships the directory /${relativePath}, but the guest's root filesystem has a file there.`, {
      hint: 'The base guest and the package disagree about that path; change the recipe so only one of them provides it.',
      details: { path: relativePath },
    });
  }
}

/**
 * The host path that `relativePath` names inside `root`, following symlinks the way the
 * guest would see them if `root` were its `/`: absolute targets start at `root`, and `..`
 * never climbs above it. Components that do not exist (yet) are taken as they are.
 */
export async function resolveInRoot(root: string, relativePath: string): Promise<string> {
  const pending = relativePath.split('/').filter(Boolean);
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const path = join(root, ...resolved, part);
    const info = await lstat(path).catch(() => undefined);
    if (!info?.isSymbolicLink()) {
      resolved.push(part);
      continue;
    }
    if (++hops > 40) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Too many levels of symbolic links at /${[...resolved, part].join('/')} in the guest's root filesystem.`);
    }
    const target = await readlink(path);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return join(root, ...resolved);
}
