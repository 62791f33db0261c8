/**
 * `macvm doctor` as a user runs it (the built CLI): its exit code and --json's `ok` agree,
 * and a project whose macvm.config.ts does not load does not pass.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMacvm } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;
let project: string;
beforeAll(async () => {
  testHome = await createTestHome({ images: ['linux-browser'] });
  project = await mkdtemp(join(tmpdir(), 'macvm-doctor-'));
});
afterAll(async () => {
  await testHome.cleanup();
  await rm(project, { recursive: true, force: true });
});

async function doctor(args: string[]) {
  const { code, stdout } = await runMacvm(['doctor', ...args], { cwd: project, env: { MACVM_HOME: testHome.home } }).done;
  return { code, stdout };
}

describe('macvm doctor', () => {
  it('exit code and --json agree, whether or not the host is ready', async () => {
    const text = await doctor([]);
    const json = await doctor(['--json']);
    const report = JSON.parse(json.stdout) as { ok: boolean; checks: Array<{ area: string; ok: boolean }> };
    expect(json.code).toBe(text.code);
    expect(report.ok).toBe(json.code === 0);
    // vz on Linux is a fact about the host, not a failure of it.
    if (process.platform === 'linux') expect(report.checks.find((c) => c.area === 'vz')).toMatchObject({ ok: false, notForThisHost: true });
  });

  it('fails in a project whose macvm.config.ts is invalid, naming the bad key', async () => {
    await writeFile(join(project, 'macvm.config.mjs'), 'export default { slots: { qemu: 0 }, defualts: {} };\n');
    try {
      const json = await doctor(['--json']);
      const report = JSON.parse(json.stdout) as { ok: boolean; checks: Array<{ area: string; ok: boolean; detail: string }> };
      expect(json.code).toBe(1);
      expect(report.ok).toBe(false);
      expect(report.checks[0]).toMatchObject({ area: 'config', ok: false, detail: expect.stringContaining('slots.qemu must be a positive integer') });
      expect(report.checks[0]!.detail).toContain('did you mean "defaults"');
      const text = await doctor([]);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/✗ config/);
    } finally {
      await rm(join(project, 'macvm.config.mjs'), { force: true });
    }
  });
});
