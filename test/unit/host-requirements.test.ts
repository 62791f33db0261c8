import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HOST_REQUIREMENTS, requirementsFor } from '../../src/vm/host-requirements.js';
import { BUILD_TOOLS } from '../../src/vm/qemu/image/host-tools.js';

/**
 * The one host list (src/vm/host-requirements.ts) against what the code really runs: every
 * host program that test/ or src/ starts by name — a string literal passed to execFile,
 * execFileSync, spawn, spawnSync, execa, runTool or a promisify(execFile) alias, or an
 * absolute /bin, /sbin, /usr/bin, /usr/sbin path written in the code — must be in the list
 * (so `doctor --fix --with-test-tools` installs it), be node itself, or be one of the
 * base-system tools below.
 *
 * What this scan cannot see: programs named inside shell command strings (`busybox adjtimex`
 * and `perl -e …` in src/bench/timers.ts run through `sh -c`) and programs whose name is in a
 * variable. Those are in the list by hand, each with its reason.
 */
const ROOT = join(fileURLToPath(import.meta.url), '../../..');

/** Always there on a Debian/Ubuntu host (Essential: yes, or node itself), or only run on macOS. */
const BASE_SYSTEM: Record<string, string> = {
  node: 'the test runner itself',
  npx: 'comes with node (npm)',
  npm: 'comes with node (npm pack in the packed-package test)',
  tar: 'tar, Essential (unpacking the packed tarball)',
  sh: 'dash, Essential',
  dash: 'dash, Essential (the guest boot script is run under it as well as busybox)',
  true: 'coreutils, Essential',
  sleep: 'coreutils, Essential',
  mv: 'coreutils, Essential',
  mkdir: 'coreutils, Essential',
  uname: 'coreutils, Essential (only quoted in a shell-quoting test)',
  ldd: 'libc-bin, Essential (bench: is node glibc-linked)',
  sysctl: 'called on macOS only (src/bench/environment.ts)',
  sw_vers: 'macOS only (src/bench/environment.ts)',
};

const SPAWNERS = ['execFileSync', 'execFile', 'spawnSync', 'spawn', 'execa', 'execaSync', 'execSync'];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Host programs a file starts by a literal name, each with where. */
function hostCommandsIn(text: string): string[] {
  const found: string[] = [];
  const callees = new Set(SPAWNERS);
  // const run = promisify(execFile);
  for (const alias of text.matchAll(/\b(?:const|let)\s+([\w$]+)\s*=\s*promisify\(\s*execFile\s*\)/g)) callees.add(alias[1]!);
  const names = [...callees].map((c) => c.replace(/\$/g, '\\$')).join('|');
  // Not `.spawn(`: VmhostClient.spawn and the like take no program name.
  const call = new RegExp(`(?<![.\\w$])(?:${names})\\(\\s*(['"\`])([^'"\`$\\\\\\s]+)\\1`, 'g');
  for (const match of text.matchAll(call)) found.push(match[2]!);
  // runTool('step', 'program', …)
  for (const match of text.matchAll(/\brunTool\(\s*(?:'[^']*'|`[^`]*`)\s*,\s*'([^']+)'/g)) found.push(match[1]!);
  for (const match of text.matchAll(/['"`]((?:\/usr)?\/s?bin\/[\w.+-]+)/g)) found.push(match[1]!);
  return found.map((command) => basename(command));
}

function scan(): Map<string, Set<string>> {
  const uses = new Map<string, Set<string>>();
  // Not the list itself (its paths would vouch for themselves), nor this file's examples.
  const skip = new Set([fileURLToPath(import.meta.url), join(ROOT, 'src/vm/host-requirements.ts')]);
  for (const file of [...sourceFiles(join(ROOT, 'src')), ...sourceFiles(join(ROOT, 'test'))].filter((f) => !skip.has(f))) {
    for (const command of hostCommandsIn(readFileSync(file, 'utf8'))) {
      if (!uses.has(command)) uses.set(command, new Set());
      uses.get(command)!.add(relative(ROOT, file));
    }
  }
  return uses;
}

describe('host requirements: one list', () => {
  const listed = new Set(HOST_REQUIREMENTS.map((r) => basename(r.bin)));
  const uses = scan();

  it('the scan finds the host programs it is known to (so a broken pattern cannot pass silently)', () => {
    for (const known of ['cpio', 'readelf', 'ssh-keygen', 'git', 'sshd', 'chromium', 'qemu-img', 'dropbearconvert', 'mkfs.ext4', 'openssl', 'sh']) {
      expect(uses.has(known), `${known} not found by the scan`).toBe(true);
    }
  });

  it('every host program src/ and test/ start is in the list, or a base-system tool', () => {
    const unlisted = [...uses.entries()]
      .filter(([command]) => !listed.has(command) && !(command in BASE_SYSTEM))
      .map(([command, files]) => `${command} (${[...files].join(', ')})`);
    expect(unlisted, 'add these to src/vm/host-requirements.ts with their Debian package').toEqual([]);
  });

  it('names each program once, with a package and a reason', () => {
    const bins = HOST_REQUIREMENTS.map((r) => r.bin);
    expect(new Set(bins).size).toBe(bins.length);
    for (const requirement of HOST_REQUIREMENTS) {
      expect(requirement.apt).toMatch(/^[a-z0-9][a-z0-9.+-]+$/);
      expect(requirement.why.length).toBeGreaterThan(5);
      expect(requirement.neededFor.length).toBeGreaterThan(0);
      expect(requirement.bin in BASE_SYSTEM, `${requirement.bin} is both listed and base-system`).toBe(false);
    }
  });

  it('the tools found only inside shell strings are listed by hand', () => {
    const tests = requirementsFor('tests').map((r) => basename(r.bin));
    expect(tests).toEqual(expect.arrayContaining(['busybox', 'perl', 'sshd', 'chromium', 'chromedriver', 'cpio', 'readelf']));
    // clang is for `npm run check:native` with a macOS SDK, not for the tests.
    expect(listed.has('clang')).toBe(false);
  });

  it('the image build checks its part of the same list, and .ci/run keeps no package list of its own', () => {
    expect(BUILD_TOOLS).toEqual(requirementsFor('image-build').map((r) => ({ tool: r.bin, apt: r.apt })));
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    expect(ci).not.toMatch(/apt-get|apt install/);
    expect(ci).toMatch(/^npm install && npm test$/m);
  });

  it('the scan reads string-literal program names in the shapes the code uses', () => {
    const text = [
      "execFileSync('cpio', ['-t'])",
      'spawn(\n  "sleep", ["1"])',
      'VmhostClient.spawn({ command: x })',
      'spawn(process.execPath, [])',
      "const run = promisify(execFile);\nawait run('openssl', ['req'])",
      "await runTool('make the disk', 'mkfs.ext4', [])",
      "const SSHD_PATH = '/usr/sbin/sshd';",
      'execa(`qemu-img`, [])',
      'execa(`${bin}`, [])',
    ].join('\n');
    expect(hostCommandsIn(text).sort()).toEqual(['cpio', 'mkfs.ext4', 'openssl', 'qemu-img', 'sleep', 'sshd']);
  });
});
