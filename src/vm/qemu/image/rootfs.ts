import { chmod, copyFile, lstat, mkdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { readNeededLibraries } from './elf.js';
import { accountFiles, announceReady, HOST_KEY_PATH, inittab, powerButtonAction, QUICK_POWEROFF_PATH, quickPoweroff, rcK, rcS } from './guest-files.js';
import { runTool } from './run-tool.js';

/**
 * Assembles the guest's root filesystem as a plain directory (mkfs.ext4 -d turns it
 * into the disk): static busybox with a symlink per applet, dropbear and sftp-server with
 * exactly the shared libraries they load, taken from the same Debian packages, and the
 * boot scripts of guest-files.ts.
 */
export interface RootfsInputs {
  /** Where all packages were unpacked (dpkg-deb -x into one tree). */
  packageRoot: string;
  rootfs: string;
  clientPublicKey: string;
  dropbearHostKeyPath: string;
  /** Lines for /etc/macvm-release (facts about the build). */
  release: Record<string, string>;
}

const LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'usr/lib'];
const GUEST_LIB_DIR = 'lib/x86_64-linux-gnu';
const INTERPRETER = 'ld-linux-x86-64.so.2';

/** Where Debian's dropbear (and OpenSSH) look for sftp-server; all point at one file. */
export const SFTP_SERVER_PATH = 'usr/lib/openssh/sftp-server';
const SFTP_SERVER_ALIASES = ['usr/lib/sftp-server', 'usr/libexec/sftp-server'];

export async function assembleRootfs(inputs: RootfsInputs): Promise<{ applets: number; libraries: string[] }> {
  const { packageRoot, rootfs } = inputs;
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', GUEST_LIB_DIR, 'lib64', 'usr/lib/openssh', 'usr/libexec', 'etc/init.d', 'etc/dropbear', 'etc/acpi/PWRF', 'proc', 'sys', 'dev', 'tmp', 'run', 'var/log', 'mnt', 'home']) {
    await mkdir(join(rootfs, dir), { recursive: true, mode: 0o755 });
  }
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await mkdir(join(rootfs, 'root/.ssh'), { recursive: true, mode: 0o700 });
  await chmod(join(rootfs, 'root'), 0o700);
  await symlink('../run', join(rootfs, 'var/run'));

  const applets = await installBusybox(packageRoot, rootfs);

  await install(join(packageRoot, 'usr/sbin/dropbear'), join(rootfs, 'usr/sbin/dropbear'), 0o755);
  await install(join(packageRoot, SFTP_SERVER_PATH), join(rootfs, SFTP_SERVER_PATH), 0o755);
  for (const alias of SFTP_SERVER_ALIASES) await symlink(`/${SFTP_SERVER_PATH}`, join(rootfs, alias));
  const libraries = await installLibraries(packageRoot, rootfs, [join(rootfs, 'usr/sbin/dropbear'), join(rootfs, SFTP_SERVER_PATH)]);

  for (const [path, file] of Object.entries(accountFiles())) await writeText(join(rootfs, path), file.text, file.mode);
  await writeText(join(rootfs, 'etc/inittab'), inittab(), 0o644);
  await writeText(join(rootfs, 'etc/init.d/rcS'), rcS(), 0o755);
  await writeText(join(rootfs, 'etc/init.d/rcK'), rcK(), 0o755);
  await writeText(join(rootfs, 'etc/init.d/announce-ready'), announceReady(), 0o755);
  await writeText(join(rootfs, 'etc/acpi/PWRF/00000080'), powerButtonAction(), 0o755);
  await writeText(join(rootfs, QUICK_POWEROFF_PATH.slice(1)), quickPoweroff(), 0o755);
  await writeText(join(rootfs, 'etc/macvm-release'), Object.entries(inputs.release).map(([k, v]) => `${k}=${v}\n`).join(''), 0o644);
  await writeText(join(rootfs, 'root/.ssh/authorized_keys'), `${inputs.clientPublicKey}\n`, 0o600);
  await install(inputs.dropbearHostKeyPath, join(rootfs, HOST_KEY_PATH.slice(1)), 0o600);
  return { applets, libraries };
}

/** busybox-static's own list of applets with their canonical paths (bin/sh, sbin/init, usr/bin/sha256sum…). */
async function installBusybox(packageRoot: string, rootfs: string): Promise<number> {
  const busybox = join(packageRoot, 'bin/busybox');
  await install(busybox, join(rootfs, 'bin/busybox'), 0o755);
  // The static amd64 busybox runs on the (amd64) build host, so it can list itself.
  const list = (await runTool('list busybox applets', busybox, ['--list-full'])).split('\n').map((l) => l.trim()).filter(Boolean);
  let count = 0;
  for (const applet of list) {
    const target = join(rootfs, applet);
    if (applet === 'bin/busybox' || (await exists(target))) continue;
    await mkdir(dirname(target), { recursive: true });
    await symlink('/bin/busybox', target);
    count++;
  }
  for (const needed of ['bin/sh', 'sbin/init', 'sbin/poweroff', 'sbin/acpid', 'usr/bin/sha256sum', 'bin/dd']) {
    if (!(await exists(join(rootfs, needed)))) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `busybox-static has no ${needed} applet; the guest cannot work without it.`);
    }
  }
  return count;
}

/** Copies the shared-library closure of `programs` (and the dynamic loader) from the packages. */
async function installLibraries(packageRoot: string, rootfs: string, programs: string[]): Promise<string[]> {
  const installed = new Set<string>();
  const queue = [...programs];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const soname of await readNeededLibraries(file)) {
      if (installed.has(soname)) continue;
      const source = await findLibrary(packageRoot, soname);
      if (!source) {
        throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `${soname} (needed by ${file.slice(rootfs.length)}) is in none of the unpacked packages.`, {
          hint: 'Add the Debian package that ships it to the linux-test package list.',
        });
      }
      const target = join(rootfs, GUEST_LIB_DIR, soname);
      await install(source, target, 0o644);
      installed.add(soname);
      queue.push(target);
    }
  }
  const loader = await findLibrary(packageRoot, INTERPRETER);
  if (!loader) throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `The dynamic loader ${INTERPRETER} is not in the unpacked libc6 package.`);
  await install(loader, join(rootfs, GUEST_LIB_DIR, INTERPRETER), 0o755);
  await symlink(`/${GUEST_LIB_DIR}/${INTERPRETER}`, join(rootfs, 'lib64', INTERPRETER));
  return [...installed, INTERPRETER].sort();
}

async function findLibrary(packageRoot: string, soname: string): Promise<string | undefined> {
  for (const dir of LIB_DIRS) {
    const found = await resolveInside(packageRoot, join(dir, soname));
    if (found) return found;
  }
  return undefined;
}

/**
 * Follows symlinks (libz.so.1 -> libz.so.1.2.13, or absolute ones) inside the unpacked
 * tree, never out into the build host's own /lib.
 */
async function resolveInside(root: string, relativePath: string, hops = 0): Promise<string | undefined> {
  const path = join(root, relativePath);
  const info = await lstat(path).catch(() => undefined);
  if (!info) return undefined;
  if (!info.isSymbolicLink()) return info.isFile() ? path : undefined;
  if (hops > 8) return undefined;
  const target = await readlink(path);
  const next = normalize(isAbsolute(target) ? target.slice(1) : join(dirname(relativePath), target));
  if (next.startsWith('..')) return undefined; // points out of the unpacked tree
  return resolveInside(root, next, hops + 1);
}

async function install(source: string, target: string, mode: number): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  await copyFile(source, target);
  await chmod(target, mode);
}

async function writeText(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text, { mode });
  await chmod(path, mode);
}

/** lstat: applet symlinks point at /bin/busybox, which means the guest's, not this host's. */
async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
