import { chmod, copyFile, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { MacvmError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { ensurePrivateDir, macvmHome } from '../home.js';
import { packageRoot } from './addon.js';
import { siblingEntry } from '../../util/sibling-entry.js';

/**
 * Virtualization.framework only lets a process create VMs when its MAIN EXECUTABLE carries
 * the com.apple.security.virtualization entitlement — signing the addon does nothing. So
 * vmhost runs on a copy of node, ad-hoc signed with native/vmhost.entitlements:
 *
 *   codesign --sign - --entitlements native/vmhost.entitlements --force <copy>
 *   codesign -d --entitlements :- <copy>          (verify)
 *
 * The copy lives at $MACVM_HOME/vmhost/node, with a stamp naming the node it was copied
 * from, so a node upgrade makes `macvm doctor --fix` copy and sign again.
 */
export const VIRTUALIZATION_ENTITLEMENT = 'com.apple.security.virtualization';

export interface VmhostBinaryStatus {
  path: string;
  ok: boolean;
  /** What is wrong, when not ok (for `macvm doctor`). */
  problem?: string;
  /** True when this call copied and signed the binary. */
  fixed: boolean;
}

export interface EnsureVmhostOptions {
  /** Copy and sign when missing, stale or unsigned (`macvm doctor --fix`). */
  fix?: boolean;
  home?: string;
  /** The node to copy; default the running one. */
  sourceNode?: string;
  /** The codesign program (tests put a stand-in here). */
  codesign?: string;
  platform?: NodeJS.Platform;
}

interface Stamp {
  source: string;
  size: number;
  mtimeMs: number;
}

export function vmhostBinaryPath(home = macvmHome()): string {
  return join(home, 'vmhost', 'node');
}

export function entitlementsPath(): string {
  return join(packageRoot(), 'native', 'vmhost.entitlements');
}

export async function ensureVmhostBinary(options: EnsureVmhostOptions = {}): Promise<VmhostBinaryStatus> {
  const path = vmhostBinaryPath(options.home);
  if ((options.platform ?? process.platform) !== 'darwin') {
    return { path, ok: false, fixed: false, problem: 'vmhost needs macOS (Virtualization.framework).' };
  }
  const codesign = options.codesign ?? 'codesign';
  const source = options.sourceNode ?? process.execPath;
  const problem = await checkVmhostBinary(path, source, codesign);
  if (!problem) return { path, ok: true, fixed: false };
  if (!options.fix) return { path, ok: false, fixed: false, problem };

  await ensurePrivateDir(dirname(path));
  await copyFile(source, path);
  await chmod(path, 0o755);
  const signed = await execa(codesign, ['--sign', '-', '--entitlements', entitlementsPath(), '--force', path], { reject: false });
  if (signed.exitCode !== 0) {
    throw new MacvmError('MACVM_ENTITLEMENT_MISSING', `codesign could not sign ${path}: ${(signed.stderr || signed.stdout).trim()}`, {
      hint: 'Install the Xcode command line tools (`xcode-select --install`) so codesign is available, then rerun `macvm doctor --fix`.',
    });
  }
  const info = await stat(source);
  await writeFileAtomic(stampPath(path), JSON.stringify({ source, size: info.size, mtimeMs: info.mtimeMs } satisfies Stamp) + '\n', { mode: 0o600 });
  const after = await checkVmhostBinary(path, source, codesign);
  if (after) {
    throw new MacvmError('MACVM_ENTITLEMENT_MISSING', `Signed ${path}, but it still fails verification: ${after}`, {
      hint: 'Check `codesign -d --entitlements :- ' + path + '` by hand.',
    });
  }
  return { path, ok: true, fixed: true };
}

/** undefined when the binary is present, current, and entitled; otherwise what is wrong. */
async function checkVmhostBinary(path: string, source: string, codesign: string): Promise<string | undefined> {
  let stamp: Stamp;
  try {
    await stat(path);
    stamp = JSON.parse(await readFile(stampPath(path), 'utf8')) as Stamp;
  } catch {
    return `${path} does not exist yet.`;
  }
  const info = await stat(source);
  if (stamp.source !== source || stamp.size !== info.size || stamp.mtimeMs !== info.mtimeMs) {
    return `${path} was copied from another node than ${source} (node was upgraded?).`;
  }
  const shown = await execa(codesign, ['-d', '--entitlements', ':-', path], { reject: false, all: true });
  if (shown.exitCode !== 0) return `${path} is not signed (${(shown.all ?? '').trim().split('\n')[0]}).`;
  if (!hasVirtualizationEntitlement(shown.all ?? '')) return `${path} lacks the ${VIRTUALIZATION_ENTITLEMENT} entitlement.`;
  return undefined;
}

function stampPath(binary: string): string {
  return `${binary}.source.json`;
}

/**
 * Reads `codesign -d --entitlements :- <bin>` output. codesign prints either an XML plist
 * (the `:-` form, and older macOS) or, on newer macOS without --xml, its bracketed dump:
 *
 *   [Dict]
 *   	[Key] com.apple.security.virtualization
 *   	[Value]
 *   		[Bool] true
 */
export function hasVirtualizationEntitlement(output: string): boolean {
  const key = VIRTUALIZATION_ENTITLEMENT.replace(/\./g, '\\.');
  const xml = new RegExp(`<key>\\s*${key}\\s*</key>\\s*<true\\s*/>`);
  const dump = new RegExp(`\\[Key\\]\\s*${key}\\s*\\[Value\\]\\s*\\[Bool\\]\\s*true`);
  return xml.test(output) || dump.test(output);
}

/** How to start vmhost: the signed node, plus tsx when running from TypeScript sources. */
export function vmhostCommandLine(binary: string): { command: string; args: string[] } {
  // vmhost runs with its runtime dir as cwd: siblingEntry names tsx by absolute URL.
  const { file, nodeArgs } = siblingEntry(import.meta.url, 'vmhost-main');
  return { command: binary, args: [...nodeArgs, file] };
}
