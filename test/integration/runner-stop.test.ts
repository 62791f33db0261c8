/**
 * Nothing outlives its run: the real `macvm test` (built CLI, real qemu) killed at the awkward
 * moments — while its suite waits for a slot, mid-suite with only the runner pid signalled (its
 * workers orphaned), and stopped with SIGINT/SIGTERM (graceful: report written, exit 130/143).
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { isRunning } from '../../src/util/process-identity.js';
import { descendants } from '../support/descendants.js';
import { runMacvm, type CliRun } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const HOLDS_VM = 'test/fixtures/runner/holds-vm.spec.ts';
let testHome: TestHome;
let scratch: string;
const runs: CliRun[] = [];

beforeAll(async () => {
  testHome = await createTestHome();
  scratch = await mkdtemp(join(tmpdir(), 'macvm-stop-'));
});

afterEach(async () => {
  for (const run of runs.splice(0)) if (run.child.exitCode === null && run.child.signalCode === null) process.kill(-run.child.pid!, 'SIGKILL');
});

afterAll(async () => {
  await testHome?.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

function start(args: string[], extra: NodeJS.ProcessEnv): CliRun {
  const run = runMacvm(args, { env: { MACVM_HOME: testHome.home, ...extra } });
  runs.push(run);
  return run;
}

/** What is left of runs under the test home: VMs, clones, slots, sessions, and the given processes still running. */
async function leftovers(pids: number[] = []) {
  const left = await testHome.leftovers();
  const slotDir = join(testHome.home, 'slots', 'qemu');
  const slots = existsSync(slotDir) ? readdirSync(slotDir).filter((n) => n.startsWith('slot-')) : [];
  const sessions = existsSync(join(testHome.home, 'sessions')) ? readdirSync(join(testHome.home, 'sessions')) : [];
  const processes: number[] = [];
  for (const pid of pids) if (await isRunning(pid)) processes.push(pid);
  return { ...left, slots, sessions, processes };
}

const CLEAN = { runtimeDirs: [], qemuPids: [], slots: [], sessions: [], processes: [] };

async function until(ms: number, probe: () => Promise<boolean> | boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) return false;
    await sleep(100);
  }
  return true;
}

async function cleanWithin(ms: number, pids: number[]) {
  await until(ms, async () => JSON.stringify(await leftovers(pids)) === JSON.stringify(CLEAN));
  return leftovers(pids);
}

describe('a killed or stopped runner leaves nothing', () => {
  it('runner SIGKILLed while its suite waits for a slot: its worker never boots a VM, nothing is left after the holder finishes', async () => {
    const markerA = join(scratch, 'slot-a');
    const markerB = join(scratch, 'slot-b');
    const a = start(['test', HOLDS_VM], { MACVM_REPORTS_DIR: join(scratch, 'r-a'), MACVM_SLOTS_QEMU: '1', MACVM_TEST_MARKER: markerA, MACVM_TEST_HOLD_MS: '8000' });
    expect(await until(150_000, () => existsSync(markerA)), 'runner A never got its VM').toBe(true);
    const b = start(['test', HOLDS_VM], { MACVM_REPORTS_DIR: join(scratch, 'r-b'), MACVM_SLOTS_QEMU: '1', MACVM_TEST_MARKER: markerB, MACVM_TEST_HOLD_MS: '2000' });
    const queue = join(testHome.home, 'slots', 'qemu', 'queue');
    expect(await until(60_000, () => existsSync(queue) && readdirSync(queue).some((n) => n.endsWith('.json'))), 'runner B never queued').toBe(true);
    const bProcesses = descendants(b.child.pid!);

    process.kill(b.child.pid!, 'SIGKILL');
    const a_ = await a.done;
    expect(a_.code, a_.stderr).toBe(0);
    expect(await cleanWithin(10_000, bProcesses)).toEqual(CLEAN);
    expect(existsSync(markerB), "the dead runner's worker booted a VM").toBe(false);
    // And the next run gets its slot at once.
    const c = start(['test', HOLDS_VM], { MACVM_REPORTS_DIR: join(scratch, 'r-c'), MACVM_SLOTS_QEMU: '1', MACVM_TEST_HOLD_MS: '0' });
    const c_ = await c.done;
    expect(c_.code, c_.stderr).toBe(0);
  }, 300_000);

  it('runner pid alone SIGKILLed mid-suite: the orphaned worker stops its VM and exits within 10 s', async () => {
    const marker = join(scratch, 'orphan');
    const run = start(['test', HOLDS_VM], { MACVM_REPORTS_DIR: join(scratch, 'r-orphan'), MACVM_TEST_MARKER: marker, MACVM_TEST_HOLD_MS: '300000' });
    expect(await until(150_000, () => existsSync(marker)), 'the VM never came up').toBe(true);
    const below = descendants(run.child.pid!);
    expect(below.length).toBeGreaterThan(1);

    process.kill(run.child.pid!, 'SIGKILL');
    expect(await cleanWithin(10_000, below)).toEqual(CLEAN);
  }, 240_000);

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} mid-suite: VMs stopped, the report written with the suite marked interrupted, exit ${code}`, async () => {
      const marker = join(scratch, `graceful-${signal}`);
      const reports = join(scratch, `r-${signal}`);
      // A previous run's report must not survive: it links to artifacts this run deletes.
      await mkdir(join(reports, 'artifacts', 'old'), { recursive: true });
      await writeFile(join(reports, 'index.html'), 'previous run');
      const run = start(['test', HOLDS_VM, 'test/fixtures/runner/passing.spec.ts'], {
        MACVM_REPORTS_DIR: reports,
        MACVM_TEST_MARKER: marker,
        MACVM_TEST_HOLD_MS: '300000',
        MACVM_SLOTS_QEMU: '2',
      });
      expect(await until(150_000, () => existsSync(marker)), 'the VM never came up').toBe(true);
      const below = descendants(run.child.pid!);

      process.kill(run.child.pid!, signal);
      const done = await run.done;
      expect(done.code, done.stderr).toBe(code);
      expect(done.stderr).toMatch(new RegExp(`interrupted by ${signal}`));
      expect(await cleanWithin(10_000, below)).toEqual(CLEAN);

      const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
      expect(result.interrupted).toBe(signal);
      const held = result.suites.find((s) => s.name === 'a suite that holds its VM')!;
      expect(held).toMatchObject({ status: 'failed', interrupted: true, error: { code: 'MACVM_INTERRUPTED' } });
      expect(await readFile(join(reports, 'index.html'), 'utf8')).not.toBe('previous run');
      expect(existsSync(join(reports, 'junit.xml'))).toBe(true);
    }, 240_000);
  }

  it('says what the start-up sweep removed by kind, and marks a suite with a failed test ✗', async () => {
    // A stale slot of a dead holder, and no VM: the sweep must not call it a VM.
    const slots = join(testHome.home, 'slots', 'qemu');
    await mkdir(slots, { recursive: true, mode: 0o700 });
    await writeFile(join(slots, 'slot-7'), JSON.stringify({ session: 's-old', suite: 'old', pid: 999_999, pidStartTime: '1', since: new Date().toISOString(), ticket: 't' }));
    const run = start(['test', 'test/fixtures/runner/failing.spec.ts'], { MACVM_REPORTS_DIR: join(scratch, 'r-fail'), CI: '' });
    const done = await run.done;
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(/removed 1 stale slot left by dead runs/);
    expect(done.stderr).not.toMatch(/VM\(s\)/);
    expect(done.stderr).toMatch(/✗ a failing suite/);
    expect(done.stderr).not.toMatch(/✓ a failing suite/);
    // The suite's own time is "running tests", not time spent "ready".
    expect(done.stderr).toMatch(/✗ a failing suite .*\(.*running tests [\d.]+s, tearing down [\d.]+s\)/);
    expect(await cleanWithin(10_000, [])).toEqual(CLEAN);
  }, 240_000);
});
