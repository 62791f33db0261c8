import { createHash } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { execa } from 'execa';
import { MacvmError, messageOf } from '../errors.js';
import type { BenchShell } from './shell.js';
import { shellWord } from './shell.js';

/**
 * Making THIS host's node binary run on a side, so JS workloads (and, on minimal guests,
 * the command timer) run the very same engine in the guest as on the host.
 *
 * - A guest whose own `node --version` equals ours is used as is ('guest-node').
 * - Otherwise, when the guest has our OS and CPU architecture, process.execPath is uploaded
 *   ('uploaded-node'). On Linux it is dynamically linked against glibc, which a busybox guest
 *   does not have, so the libraries `ldd` lists (libc, libstdc++, libm, libgcc_s, ...) and the
 *   dynamic loader go beside it, and node starts as
 *     <dir>/lib/ld-linux-x86-64.so.2 --library-path <dir>/lib <dir>/node
 *   (invoking the loader directly means the guest's own /lib is never consulted). On macOS the
 *   binary needs only system libraries and runs directly.
 * - Another OS or architecture cannot run our binary: a MacvmError says to use commands.
 * The upload (~100 MB) lands in a directory named after node's version, and is reused when a
 * working copy is already there (long-lived `ssh` provider machines). A guest cloned from a
 * disk layer that already holds this node (layerNodeDir; built once per image by the qemu
 * provider's derived images) needs no upload at all.
 */
export interface NodeOnSide {
  /** Shell words that start node on that side. */
  command: string;
  /** 'layer-node': found in the guest's disk, put there by a cached disk layer (no upload). */
  how: 'host' | 'guest-node' | 'uploaded-node' | 'layer-node';
}

export function hostNode(): NodeOnSide {
  return { command: shellWord(process.execPath), how: 'host' };
}

const OS_NAMES: Record<string, string> = { Linux: 'linux', Darwin: 'darwin' };
const ARCH_NAMES: Record<string, string> = { x86_64: 'x64', amd64: 'x64', aarch64: 'arm64', arm64: 'arm64' };

export async function guestPlatform(guest: BenchShell): Promise<{ platform: string; arch: string; raw: string }> {
  const result = await guest.exec('uname -s; uname -m', { reject: false, timeoutMs: 30_000 });
  const [os = '', machine = ''] = result.stdout.trim().split(/\s+/);
  return { platform: OS_NAMES[os] ?? os.toLowerCase(), arch: ARCH_NAMES[machine] ?? machine, raw: `${os} ${machine}` };
}

export interface GuestNodeOptions {
  /**
   * Where the upload goes in the guest. Default $HOME/.cache: on disk in most guests (a
   * tmpfs /tmp would hold 100 MB of the guest's RAM during the benchmark) and kept between
   * runs on long-lived machines.
   */
  baseDir?: string;
}

async function guestCacheDir(guest: BenchShell): Promise<string> {
  const home = await guest.exec('printf %s "$HOME"', { reject: false, timeoutMs: 30_000 }).catch(() => undefined);
  const dir = home?.exitCode === 0 ? home.stdout.trim() : '';
  return dir.startsWith('/') && dir !== '/' ? `${dir}/.cache` : '/tmp';
}

/**
 * This host's node as a set of files to put in a guest dir, and the command that starts it
 * from there: node itself, plus on Linux the libraries `ldd` lists and the loader. `identity`
 * changes when any of those files does (another node, an upgraded libc), so a copy made from
 * an older set is never taken for this one.
 */
export interface NodeBundle {
  /** "node-v20.20.2-linux-x64": names the dir the files go in. */
  name: string;
  files: Array<{ hostPath: string; relativePath: string; mode: number }>;
  /** The command that starts node from `dir` (shell words). */
  command(dir: string): string;
  identity: string;
}

export async function nodeBundle(): Promise<NodeBundle> {
  const libs = process.platform === 'linux' ? await linkedLibraries(process.execPath) : undefined;
  const loader = libs?.find((lib) => lib.isLoader);
  const files = [
    ...(libs ?? []).map((lib) => ({ hostPath: lib.path, relativePath: `lib/${basename(lib.name)}`, mode: lib.isLoader ? 0o755 : 0o644 })),
    { hostPath: process.execPath, relativePath: 'node', mode: 0o755 },
  ];
  const identity = createHash('sha256');
  identity.update(`${process.version} ${process.platform} ${process.arch}\n`);
  for (const file of files) {
    // Which file and which version of it: a reinstall or upgrade replaces the file (new inode, size, mtime).
    const info = await stat(file.hostPath);
    identity.update(`${file.relativePath} ${await realpath(file.hostPath)} ${info.dev}:${info.ino} ${info.size} ${info.mtimeMs}\n`);
  }
  return {
    name: `node-${process.version}-${process.platform}-${process.arch}`,
    files,
    command: (dir) =>
      loader
        ? `${shellWord(`${dir}/lib/${basename(loader.name)}`)} --library-path ${shellWord(`${dir}/lib`)} ${shellWord(`${dir}/node`)}`
        : shellWord(`${dir}/node`),
    identity: identity.digest('hex'),
  };
}

/**
 * Where a disk layer holding this host's node puts it in the guest (see the qemu provider's
 * derived images): a fixed path, so a guest cloned from such a layer is found to have node
 * without an upload.
 */
export function layerNodeDir(bundle: Pick<NodeBundle, 'name'>): string {
  return `/opt/macvm/${bundle.name}`;
}

export async function guestNode(guest: BenchShell, options: GuestNodeOptions = {}): Promise<NodeOnSide> {
  const own = await guest.exec('node --version', { reject: false, timeoutMs: 30_000 }).catch(() => undefined);
  if (own?.exitCode === 0 && own.stdout.trim() === process.version) return { command: 'node', how: 'guest-node' };

  const target = await guestPlatform(guest);
  if (target.platform !== process.platform || target.arch !== process.arch) {
    throw new MacvmError(
      'MACVM_NOT_SUPPORTED',
      `JS function workloads need the guest to run this host's node (${process.platform}-${process.arch}), but the guest is ${target.raw.trim() || 'unknown'} and has no node ${process.version}.`,
      {
        hint: `Benchmark this guest with b.command(...) workloads only, or install node ${process.version} in the image.`,
        details: { host: `${process.platform}-${process.arch}`, guest: target },
      },
    );
  }
  const bundle = await nodeBundle();
  // A guest cloned from a disk layer that already holds this node (built once per image).
  const layered = bundle.command(layerNodeDir(bundle));
  if (await runsAs(guest, layered, `test -x ${shellWord(`${layerNodeDir(bundle)}/node`)} && `)) return { command: layered, how: 'layer-node' };

  const dir = `${options.baseDir ?? (await guestCacheDir(guest))}/macvm-${bundle.name}`;
  const command = bundle.command(dir);
  if (await runsAs(guest, command)) return { command, how: 'uploaded-node' };
  try {
    await guest.exec(`mkdir -p ${shellWord(`${dir}/lib`)}`, { timeoutMs: 30_000 });
    for (const file of bundle.files) await guest.upload(file.hostPath, `${dir}/${file.relativePath}`);
    const executables = bundle.files.filter((file) => file.mode & 0o100).map((file) => shellWord(`${dir}/${file.relativePath}`));
    await guest.exec(`chmod 755 ${executables.join(' ')}`, { timeoutMs: 30_000 });
  } catch (error) {
    throw new MacvmError('MACVM_TRANSFER_FAILED', `Uploading node to ${dir} in the guest failed: ${messageOf(error)}`, {
      hint: 'The guest needs ~110 MB free there; pass a roomier directory as guestDir.',
      cause: error,
    });
  }
  if (!(await runsAs(guest, command))) {
    const check = await guest.exec(`${command} --version`, { reject: false, timeoutMs: 60_000 });
    throw new MacvmError('MACVM_NOT_SUPPORTED', `This host's node was copied to the guest but does not start there (exit ${check.exitCode}): ${check.stderr.trim().slice(0, 400)}`, {
      hint: 'Use b.command(...) workloads for this guest, or install node in the image.',
    });
  }
  return { command, how: 'uploaded-node' };
}

/** `guard`: a cheap shell test put before the command, so a missing file costs no node start. */
async function runsAs(guest: BenchShell, command: string, guard = ''): Promise<boolean> {
  const result = await guest.exec(`${guard}${command} --version`, { reject: false, timeoutMs: 60_000 }).catch(() => undefined);
  return result?.exitCode === 0 && result.stdout.trim() === process.version;
}

export interface LinkedLibrary {
  /** The name the binary asks for (soname, or the loader's path). */
  name: string;
  /** Where it is on this host (symlinks are followed by the upload). */
  path: string;
  isLoader: boolean;
}

/** Parses `ldd <binary>`: "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)". */
export function parseLdd(output: string): LinkedLibrary[] {
  const libs: LinkedLibrary[] = [];
  for (const line of output.split('\n')) {
    const arrow = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (arrow) {
      libs.push({ name: arrow[1]!, path: arrow[2]!, isLoader: false });
      continue;
    }
    const bare = /^\s*(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (bare) libs.push({ name: bare[1]!, path: bare[1]!, isLoader: /\/ld-linux[^/]*\.so/.test(bare[1]!) });
  }
  return libs;
}

async function linkedLibraries(binary: string): Promise<LinkedLibrary[]> {
  const result = await execa('ldd', [binary], { reject: false });
  const libs = parseLdd(String(result.stdout));
  if (result.exitCode !== 0 || !libs.some((lib) => lib.isLoader)) {
    throw new MacvmError('MACVM_NOT_SUPPORTED', `Cannot list the shared libraries of ${binary} (ldd exit ${result.exitCode}), so it cannot be copied into the guest.`, {
      hint: 'Use b.command(...) workloads, or install node in the guest image.',
    });
  }
  return libs;
}
