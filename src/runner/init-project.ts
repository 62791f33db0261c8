import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { MacvmError, messageOf } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/**
 * `macvm init`: what a project needs to run its first spec — a config, one example spec and an
 * npm script — the way `npm init playwright` starts a Playwright project. A file that exists is
 * never overwritten (a second init changes nothing); package.json only gains a missing script.
 */

export type InitAction = 'written' | 'kept' | 'updated';

export interface InitStep {
  /** Relative to the project dir. */
  path: string;
  action: InitAction;
  /** Why it was kept or what changed. */
  note?: string;
}

/** The script `npm run test:vm` runs. */
export const INIT_SCRIPT = { name: 'test:vm', command: 'macvm test specs' } as const;

export const CONFIG_TEMPLATE = `import { defineConfig } from 'macvm/config';

// Every setting is in the "Configuration" section of macvm's README; a misspelt key or a bad
// value is named when the config loads.
export default defineConfig({
  // qemu runs Linux guests: on Linux (KVM once proven usable, else TCG) and on macOS (brew install
  // qemu). On an Apple Silicon Mac, 'vz' runs macOS guests from a Tart image instead.
  provider: 'qemu',
  // linux-test is built from Debian's packages on first use (~1 min): \`npx macvm doctor --fix\`.
  defaults: { image: 'linux-test', cpus: 1, memory: '512MiB' },
});
`;

export const SPEC_TEMPLATE = `import { expect, it, withMacVM } from 'macvm';

// One VM for the suite: a fresh clone of defaults.image (macvm.config.ts), booted before the
// first test and gone after the last, also when a test fails or the run is killed.
withMacVM('example', {}, (vm) => {
  it('runs a command in the guest', async () => {
    const { stdout } = await vm.sh\`uname -s\`;
    expect(stdout).toBe('Linux');
  });
});
`;

export async function initProject(dir: string): Promise<InitStep[]> {
  const root = resolve(dir);
  // A dir that is missing is created by the first write.
  const notADir = await stat(root).then((s) => !s.isDirectory(), () => false);
  if (notADir) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm init: ${root} is not a directory.`, { hint: 'Name the project directory (it is created when missing), or run macvm init inside it.' });
  }
  return [
    await writeNew(root, 'macvm.config.ts', CONFIG_TEMPLATE),
    await writeNew(root, join('specs', 'example.spec.ts'), SPEC_TEMPLATE),
    await addScript(root),
  ];
}

async function writeNew(root: string, path: string, text: string): Promise<InitStep> {
  if (existsSync(join(root, path))) return { path, action: 'kept', note: 'exists' };
  await writeFileAtomic(join(root, path), text);
  return { path, action: 'written' };
}

/** Adds the test:vm script to package.json (creating a minimal one), keeping its indentation and every other key. */
async function addScript(root: string): Promise<InitStep> {
  const path = join(root, 'package.json');
  // Only a missing package.json is made anew: one that cannot be read must not be written over.
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (text === undefined) {
    const name = basename(root).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+/, '') || 'macvm-project';
    const created = { name, private: true, type: 'module', scripts: { [INIT_SCRIPT.name]: INIT_SCRIPT.command } };
    await writeFileAtomic(path, `${JSON.stringify(created, null, 2)}\n`);
    return { path: 'package.json', action: 'written', note: `with "${INIT_SCRIPT.name}": "${INIT_SCRIPT.command}"` };
  }
  let manifest: { scripts?: Record<string, string> };
  try {
    manifest = JSON.parse(text) as typeof manifest;
  } catch (error) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm init: ${path} is not valid JSON (${messageOf(error)}); it was left as it was.`, {
      hint: 'Fix package.json and run macvm init again; the files already written are kept.',
      cause: error,
    });
  }
  if (manifest.scripts?.[INIT_SCRIPT.name] !== undefined) return { path: 'package.json', action: 'kept', note: `already has a "${INIT_SCRIPT.name}" script` };
  manifest.scripts = { ...manifest.scripts, [INIT_SCRIPT.name]: INIT_SCRIPT.command };
  const indent = /^\s*{\s*\n([ \t]+)"/.exec(text)?.[1] ?? '  ';
  await writeFileAtomic(path, `${JSON.stringify(manifest, null, indent)}\n`);
  return { path: 'package.json', action: 'updated', note: `"${INIT_SCRIPT.name}": "${INIT_SCRIPT.command}" added` };
}
