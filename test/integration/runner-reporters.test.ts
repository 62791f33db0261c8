/**
 * `macvm test` with vitest's own --reporter flag still writes macvm's reports, and a run
 * that ran nothing leaves the previous report alone (the real CLI, a spec that boots no VM).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { runMacvm } from '../support/run-macvm.js';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'macvm-reporters-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const env = (reports: string) => ({ MACVM_HOME: join(scratch, 'home'), MACVM_REPORTS_DIR: reports });

describe('macvm test and its reports', () => {
  it('--reporter=dot replaces vitest\'s default output, not macvm\'s results, HTML and JUnit', async () => {
    const reports = join(scratch, 'dot');
    const { code, stdout, stderr } = await runMacvm(['test', 'test/fixtures/runner/no-vm.spec.ts', '--reporter=dot'], { env: env(reports) }).done;
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
    expect(result.totals).toMatchObject({ tests: 1, passed: 1 });
    for (const file of ['index.html', 'junit.xml']) expect(existsSync(join(reports, file)), file).toBe(true);
  });

  it('a run that found no test files leaves the previous report as it was, and says so', async () => {
    const reports = join(scratch, 'kept');
    await runMacvm(['test', 'test/fixtures/runner/no-vm.spec.ts'], { env: env(reports) }).done;
    const before = await readFile(join(reports, 'results.json'), 'utf8');
    await writeFile(join(reports, 'marker'), '');
    const { stderr } = await runMacvm(['test', 'test/fixtures/runner/no-such-spec-anywhere'], { env: env(reports) }).done;
    expect(await readFile(join(reports, 'results.json'), 'utf8')).toBe(before);
    expect(stderr).toMatch(/no test files ran; .*left as it was/);
  });
});

describe('macvm test <folder>', () => {
  it('runs that folder, not every path that contains its name', async () => {
    const reports = join(scratch, 'folders');
    const cwd = join(import.meta.dirname, '..', 'fixtures', 'folders');
    const { code, stdout, stderr } = await runMacvm(['test', 'specs'], { cwd, env: env(reports) }).done;
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
    expect(result.suites.flatMap((s) => s.tests.map((t) => t.name))).toEqual(['runs from the specs folder']);
  });
});

describe('macvmTest().extend()', () => {
  it('shares the file-scoped VM instead of booting a second one', async () => {
    const { createTestHome } = await import('../support/vm-home.js');
    const home = await createTestHome();
    try {
      const reports = join(scratch, 'extend');
      const { code, stdout, stderr } = await runMacvm(['test', 'test/fixtures/runner/fixture-extend.spec.ts'], {
        env: { MACVM_HOME: home.home, MACVM_REPORTS_DIR: reports },
      }).done;
      expect(code, `${stdout}\n${stderr}`).toBe(0);
      const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
      expect(result.totals).toMatchObject({ tests: 2, passed: 2 });
      // The file is the suite of fixture-form tests: the report shows its one VM and console log.
      const [suite] = result.suites;
      expect(suite!.vm).toMatchObject({ provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 256, vmId: expect.stringMatching(/^macvm-/) });
      expect(existsSync(join(reports, suite!.vm!.consoleLog!))).toBe(true);
      expect(await home.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
    } finally {
      await home.cleanup();
    }
  });
});
