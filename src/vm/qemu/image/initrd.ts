import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { cpioNewc, type CpioEntry } from './cpio.js';
import { INITRD_APPLETS, initrdInit } from './guest-files.js';
import type { ResolvedModule } from './kernel-modules.js';

/**
 * The initrd: static busybox, the virtio (and power-button) modules in load order, and
 * an /init that loads them and switch_roots to the disk. About 1.5 MB gzipped.
 */
export async function makeInitrd(options: { busybox: string; modules: ResolvedModule[] }): Promise<Buffer> {
  const entries: CpioEntry[] = [
    { type: 'dir', path: 'bin' },
    { type: 'dir', path: 'dev' },
    // The kernel opens /dev/console for init's stdin/stdout before anything mounts /dev.
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'dir', path: 'proc' },
    { type: 'dir', path: 'sys' },
    { type: 'dir', path: 'newroot' },
    { type: 'dir', path: 'lib' },
    { type: 'dir', path: 'lib/modules' },
    { type: 'file', path: 'bin/busybox', data: await readFile(options.busybox), mode: 0o755 },
    ...['[', 'test', ...INITRD_APPLETS].map((applet): CpioEntry => ({ type: 'symlink', path: `bin/${applet}`, target: 'busybox' })),
  ];
  for (const module of options.modules) {
    entries.push({ type: 'file', path: `lib/modules/${module.name}.ko`, data: await readFile(module.path), mode: 0o644 });
  }
  entries.push({ type: 'file', path: 'init', data: Buffer.from(initrdInit(options.modules.map((m) => m.name))), mode: 0o755 });
  return gzipSync(cpioNewc(entries), { level: 9 });
}
