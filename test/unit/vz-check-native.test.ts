import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * scripts/check-native.mjs compile-checks native/src against a macOS SDK. The SDK cannot be
 * committed; point MACVM_MACOS_SDK at one (DEVELOPERS.md) and, unless node-addon-api is
 * installed, MACVM_NODE_ADDON_API at its headers.
 */
const root = join(import.meta.dirname, '..', '..');
const script = join(root, 'scripts', 'check-native.mjs');
const sdk = process.env.MACVM_MACOS_SDK;
const haveSdk = Boolean(sdk && existsSync(join(sdk, 'System', 'Library', 'Frameworks', 'Virtualization.framework')));
if (!haveSdk) {
  console.warn('vz-check-native: SDK tests skipped — set MACVM_MACOS_SDK to a macOS 12+ SDK (and MACVM_NODE_ADDON_API if node-addon-api is not installed).');
}

async function check(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, ...args], { env, maxBuffer: 16 * 2 ** 20 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('check-native without an SDK', () => {
  const bare = { ...process.env, MACVM_MACOS_SDK: '', CI: '' };
  // On macOS xcrun finds an SDK even without MACVM_MACOS_SDK, so "without an SDK" cannot be staged there.
  const xcrunFindsSdk = process.platform === 'darwin';
  it.skipIf(xcrunFindsSdk)('skips with a clear message and exit 0 on a developer machine', async () => {
    const result = await check([], bare);
    expect(result).toMatchObject({ code: 0, output: expect.stringMatching(/skipped — no macOS SDK/) });
  });

  it.skipIf(xcrunFindsSdk)('fails under CI instead of skipping', async () => {
    const result = await check([], { ...bare, CI: 'true' });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/refusing to skip/);
  });

  it('fails on a path that is not an SDK', async () => {
    const result = await check(['--sdk', tmpdir()], { ...bare });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/not a macOS SDK/);
  });
});

describe.skipIf(!haveSdk)('check-native against the macOS SDK', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-check-native-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // One source plus the headers it includes, so each run compiles a single file.
  async function copySource(into: string, edit: (text: string) => string): Promise<void> {
    await mkdir(into, { recursive: true });
    for (const header of ['bridge.h', 'vm-spec.h', 'virtual-machine.h']) await copyFile(join(root, 'native', 'src', header), join(into, header));
    const source = await readFile(join(root, 'native', 'src', 'virtual-machine.mm'), 'utf8');
    await writeFile(join(into, 'virtual-machine.mm'), edit(source));
  }

  it('passes on the real source', async () => {
    const good = join(dir, 'good');
    await copySource(good, (text) => text);
    const result = await check(['--sdk', sdk!, '--src', good]);
    expect(result.output).toMatch(/1\/1 sources compile/);
    expect(result.code).toBe(0);
  }, 60_000);

  it('fails when one selector is misspelt', async () => {
    const bad = join(dir, 'bad');
    await copySource(bad, (text) => {
      expect(text).toContain('requestStopWithError:');
      return text.replace('requestStopWithError:', 'requestStopWithEror:');
    });
    const result = await check(['--sdk', sdk!, '--src', bad]);
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/requestStopWithEror/);
    expect(result.output).toMatch(/FAIL/);
  }, 60_000);
});
