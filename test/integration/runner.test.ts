/**
 * The runner as users run it: `macvm test` (the built CLI) on fixture specs that boot real
 * linux-test VMs under qemu, with a private MACVM_HOME. Checks results.json, artifacts,
 * the report files, and that no VM, clone or runtime dir outlives the run — also when the
 * runner is SIGKILLed, and when six runners share a limit of two VMs.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { runMacvm } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const FIXTURES = 'test/fixtures/runner';
let testHome: TestHome;
let scratch: string;

beforeAll(async () => {
  testHome = await createTestHome();
  scratch = await mkdtemp(join(tmpdir(), 'macvm-runner-'));
});

afterEach(async () => {
  // Nothing outlives a run: no qemu under this home, no runtime dir, no live session.
  const deadline = Date.now() + 15_000;
  let left = await testHome.leftovers();
  while ((left.runtimeDirs.length || left.qemuPids.length) && Date.now() < deadline) {
    await sleep(500);
    left = await testHome.leftovers();
  }
  expect(left).toEqual({ runtimeDirs: [], qemuPids: [] });
});

afterAll(async () => {
  await testHome?.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { MACVM_HOME: testHome.home, ...extra };
}

describe('macvm test', () => {
  it('reports passing, failing, hook-failing and never-ready suites, with artifacts, and leaves nothing', async () => {
    const reports = join(scratch, 'reports-mixed');
    const run = runMacvm(
      ['test', `${FIXTURES}/passing.spec.ts`, `${FIXTURES}/failing.spec.ts`, `${FIXTURES}/hook-throws.spec.ts`, `${FIXTURES}/never-ready.spec.ts`],
      { env: env({ MACVM_REPORTS_DIR: reports, MACVM_SLOTS_QEMU: '2' }) },
    );
    const { code, stdout, stderr } = await run.done;
    expect(code, `${stdout}\n${stderr}`).toBe(1);

    const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
    const suite = (name: string) => result.suites.find((s) => s.name === name)!;

    const passing = suite('a passing suite');
    expect(passing.status).toBe('passed');
    expect(passing.vm).toMatchObject({ provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 256 });
    expect(passing.vm!.readyMs).toBeGreaterThan(0);
    expect(existsSync(join(reports, passing.vm!.consoleLog!))).toBe(true);

    const failing = suite('a failing suite');
    expect(failing.status).toBe('failed');
    const [failed, after] = failing.tests;
    expect(failed!.status).toBe('failed');
    expect(failed!.error!.message).toMatch(/Darwin/);
    expect(failed!.error!.consoleTail).toMatch(/the-guest-said-this/);
    const screen = failed!.artifacts.find((a) => a.kind === 'screenshot');
    expect(screen).toBeDefined();
    expect((await readFile(join(reports, screen!.path))).subarray(1, 4).toString()).toBe('PNG');
    expect(after!.status).toBe('passed');

    const hook = suite('a suite whose beforeAll throws');
    expect(hook.status).toBe('failed');
    expect(JSON.stringify(hook)).toMatch(/beforeAll exploded on purpose/);
    expect(hook.tests.every((t) => t.status !== 'passed')).toBe(true);

    const neverReady = suite('a VM that never becomes ready');
    expect(neverReady.status).toBe('failed');
    expect(JSON.stringify(neverReady)).toMatch(/MACVM_DEADLINE_EXCEEDED|was not ready within/);
    expect(JSON.stringify(neverReady)).toMatch(/forCommand/);
    // Its clone is gone, but its console log is kept in reports/ and the error points there.
    const keptLog = neverReady.artifacts.find((a) => a.kind === 'console-log');
    expect(keptLog?.path).toMatch(/^artifacts\/a-vm-that-never-becomes-ready-macvm-[0-9a-f]+\/console\.log$/);
    expect(await readFile(join(reports, keptLog!.path), 'utf8')).toMatch(/MACVM-READY sshd-listening/);
    expect(neverReady.error!.message).toContain(join(reports, keptLog!.path));
    expect(await readFile(join(reports, 'junit.xml'), 'utf8')).toContain(keptLog!.path);
    expect(await readFile(join(reports, 'index.html'), 'utf8')).toContain(keptLog!.path);

    // vitest skips the tests of a suite whose setup failed; the suite itself carries the failure.
    expect(result.totals).toMatchObject({ suites: 4, failed: 1 });
    expect(result.suites.filter((s) => s.status === 'failed').map((s) => s.name).sort()).toEqual(
      ['a VM that never becomes ready', 'a failing suite', 'a suite whose beforeAll throws'].sort(),
    );
    for (const file of ['index.html', 'junit.xml']) expect(existsSync(join(reports, file)), file).toBe(true);
    expect(await readFile(join(reports, 'junit.xml'), 'utf8')).toMatch(/<testsuites[^>]*failures="/);
  });

  it('a spec that calls vm.restart(): the progress shows the steps of the restart, then the suite runs its tests again, and the new VM is gone after', async () => {
    const run = runMacvm(['test', `${FIXTURES}/restart.spec.ts`], { env: env({ MACVM_REPORTS_DIR: join(scratch, 'reports-restart'), CI: '' }) });
    const { code, stdout, stderr } = await run.done;
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stderr).toMatch(/a suite that restarts its VM {2}restart: stop[\s\S]*a suite that restarts its VM {2}restart: boot/);
    // The summary: the guest's second boot between two stretches of the suite's own time.
    expect(stderr).toMatch(/✓ a suite that restarts its VM .*\(.*running tests [\d.]+s, .*restart: address [\d.]+s, .*running tests [\d.]+s, tearing down [\d.]+s\)/);
  });

  it('removes the VMs of a runner killed with SIGKILL mid-suite within 10 s', async () => {
    const marker = join(scratch, 'vm-up');
    const run = runMacvm(['test', `${FIXTURES}/holds-vm.spec.ts`], {
      env: env({ MACVM_REPORTS_DIR: join(scratch, 'reports-kill'), MACVM_TEST_MARKER: marker, MACVM_TEST_HOLD_MS: '300000' }),
    });
    const until = Date.now() + 150_000;
    while (!existsSync(marker) && Date.now() < until) await sleep(250);
    expect(existsSync(marker), 'the VM never came up').toBe(true);
    expect((await testHome.leftovers()).qemuPids.length).toBe(1);

    // SIGKILL the runner's whole process group: vitest's workers die with it, no cleanup runs.
    process.kill(-run.child.pid!, 'SIGKILL');
    const killedAt = Date.now();
    let left = await testHome.leftovers();
    while ((left.qemuPids.length || left.runtimeDirs.length) && Date.now() - killedAt < 10_000) {
      await sleep(200);
      left = await testHome.leftovers();
    }
    expect(left).toEqual({ runtimeDirs: [], qemuPids: [] });
    expect(Date.now() - killedAt).toBeLessThan(10_000);
  }, 240_000);

  it('never runs more VMs than the slot limit across six runner processes, and all finish', async () => {
    const runs = Array.from({ length: 6 }, (_, i) =>
      runMacvm(['test', `${FIXTURES}/holds-vm.spec.ts`], {
        env: env({ MACVM_REPORTS_DIR: join(scratch, `reports-six-${i}`), MACVM_SLOTS_QEMU: '2', MACVM_TEST_HOLD_MS: '3000' }),
      }),
    );
    let maxAlive = 0;
    let finished = 0;
    const all = Promise.all(runs.map((r) => r.done.then((x) => (finished++, x))));
    while (finished < runs.length) {
      maxAlive = Math.max(maxAlive, (await testHome.leftovers()).qemuPids.length);
      await sleep(100);
    }
    const results = await all;
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    expect(maxAlive).toBeGreaterThan(0);
    expect(maxAlive).toBeLessThanOrEqual(2);
  }, 900_000);

  it('rejects a bad macvm.config.ts naming the key and the expected type', async () => {
    const project = await mkdtemp(join(scratch, 'config-'));
    await writeFile(join(project, 'macvm.config.ts'), "export default { slots: { qemu: 'two' }, timeoutz: {} };\n");
    const { code, stderr, stdout } = await runMacvm(['test'], { cwd: project, env: env() }).done;
    expect(code).not.toBe(0);
    const output = stdout + stderr;
    expect(output).toMatch(/slots\.qemu/);
    expect(output).toMatch(/positive integer/);
    expect(output).toMatch(/timeoutz/);
    expect(output).toMatch(/MACVM_CONFIG_INVALID/);
    // It stopped before vitest started: no run, no reports.
    expect(existsSync(join(project, 'reports'))).toBe(false);
  });
});
