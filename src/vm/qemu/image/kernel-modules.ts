import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { readModuleInfo } from './elf.js';

/**
 * Resolves kernel modules by name inside an extracted linux-image package, without
 * depmod/modprobe (the package ships no modules.dep; that is made at install time).
 * Dependencies come from each module's own `.modinfo depends=`.
 */
export interface ResolvedModule {
  name: string;
  /** Absolute path of the .ko file. */
  path: string;
}

/** Module names use '_' and '-' interchangeably (virtio-rng.ko is module virtio_rng). */
export function normalizeModuleName(name: string): string {
  return name.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export async function moduleIndex(moduleRoot: string): Promise<{ files: Map<string, string>; builtin: Set<string> }> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.ko')) files.set(normalizeModuleName(entry.name), path);
      else if (/\.ko\.(xz|zst|gz)$/.test(entry.name)) {
        throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `The kernel package has compressed modules (${relative(moduleRoot, path)}); busybox insmod cannot load them.`, {
          hint: 'Pin a kernel whose modules are uncompressed (Debian bookworm cloud kernels are).',
        });
      }
    }
  };
  await walk(join(moduleRoot, 'kernel'));
  const builtin = new Set<string>();
  const builtinList = await readFile(join(moduleRoot, 'modules.builtin'), 'utf8').catch(() => '');
  for (const line of builtinList.split('\n')) {
    const file = line.trim().split('/').pop();
    if (file) builtin.add(normalizeModuleName(file));
  }
  return { files, builtin };
}

/**
 * The modules to insmod, dependencies first, for the wanted names. Names built into the
 * kernel are skipped; a name that is neither a module nor built in is an error.
 */
export async function resolveModules(moduleRoot: string, wanted: string[]): Promise<ResolvedModule[]> {
  const { files, builtin } = await moduleIndex(moduleRoot);
  const ordered: ResolvedModule[] = [];
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = async (raw: string, wantedBy?: string): Promise<void> => {
    const name = normalizeModuleName(raw);
    if (done.has(name)) return;
    const path = files.get(name);
    if (!path) {
      if (builtin.has(name)) {
        done.add(name);
        return;
      }
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Kernel module ${name}${wantedBy ? ` (needed by ${wantedBy})` : ''} is neither in the kernel package nor built in.`, {
        hint: 'The Debian kernel changed its configuration; update the module list in src/vm/qemu/image/.',
      });
    }
    if (visiting.has(name)) throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Kernel modules depend on each other in a cycle at ${name}.`);
    visiting.add(name);
    const depends = (await readModuleInfo(path)).get('depends')?.[0] ?? '';
    for (const dep of depends.split(',').filter(Boolean)) await visit(dep, name);
    visiting.delete(name);
    done.add(name);
    ordered.push({ name, path });
  };
  for (const name of wanted) await visit(name);
  return ordered;
}
