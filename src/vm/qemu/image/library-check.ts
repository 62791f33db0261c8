import { lstat } from 'node:fs/promises';
import { posix } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { readDynamicLinking } from './elf.js';
import { resolveInRoot } from './merge-tree.js';

/**
 * Checks, at build time, that every shared library some programs load (and the libraries
 * those load) is in the guest's root filesystem, searched as the guest's dynamic loader
 * would: the object's own RUNPATH/RPATH ($ORIGIN expanded), then the multiarch and plain
 * library dirs. A gap in a package list then fails the build with the library's name,
 * instead of showing up in a test as a driver that dies at its first start.
 */
const LOADER_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/lib', '/usr/lib'];

/** `programs`: guest paths relative to the root ('usr/bin/chromedriver'). Returns how many objects were checked. */
export async function checkLibraries(rootfs: string, programs: string[]): Promise<number> {
  const missing: string[] = [];
  const visited = new Set<string>();
  const queue: Array<{ hostPath: string; guestPath: string }> = [];
  const enqueue = async (guestPath: string) => {
    const hostPath = await resolveInRoot(rootfs, guestPath);
    if (visited.has(hostPath)) return;
    visited.add(hostPath);
    queue.push({ hostPath, guestPath: `/${hostPath.slice(rootfs.length + 1)}` });
  };
  for (const program of programs) {
    if (!(await isFileInRoot(rootfs, program))) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `/${program} is not in the guest's root filesystem.`, {
        hint: 'The Debian package that should ship it changed; check the recipe\'s package list.',
      });
    }
    await enqueue(program);
  }
  while (queue.length > 0) {
    const { hostPath, guestPath } = queue.shift()!;
    const { needed, runpath } = await readDynamicLinking(hostPath);
    const dirs = [...runpath.map((dir) => dir.replace(/\$(ORIGIN|\{ORIGIN\})/g, posix.dirname(guestPath))), ...LOADER_DIRS];
    for (const soname of needed) {
      let found: string | undefined;
      for (const dir of dirs) {
        const candidate = posix.join(dir, soname).slice(1);
        if (await isFileInRoot(rootfs, candidate)) {
          found = candidate;
          break;
        }
      }
      if (found) await enqueue(found);
      else missing.push(`${soname} (needed by ${guestPath})`);
    }
  }
  if (missing.length > 0) {
    throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `The guest lacks shared libraries: ${[...new Set(missing)].join(', ')}.`, {
      hint: 'Add the Debian packages that ship them to the recipe (apt-file search <soname> names them).',
      details: { missing },
    });
  }
  return visited.size;
}

async function isFileInRoot(rootfs: string, guestPath: string): Promise<boolean> {
  const info = await lstat(await resolveInRoot(rootfs, guestPath)).catch(() => undefined);
  return info?.isFile() ?? false;
}

