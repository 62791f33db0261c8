/**
 * Reliability: `macvm test` (the built CLI, real qemu) killed at each point of a suite's life —
 * during the slot wait, clone, boot, mid-suite and teardown — with SIGKILL, SIGTERM and SIGINT
 * sent to the runner pid alone (its workers are not signalled: the harder case). Each trial
 * counts a leak when, 15 s after the kill, a VM process, clone dir, slot, session dir or any
 * process the runner had started is still there; cleanup ms is kill → all of it gone.
 *
 *   npm run bench reliability                  # 2 trials per cell (the README figure: --trials 1)
 *   npm run bench reliability -- --trials 20   # (or MACVM_BENCH_TRIALS=20)
 *   npm run bench reliability -- --trials 10 --points clone,boot
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning } from '../src/util/process-identity.js';
import { descendants } from '../test/support/descendants.js';
import { runMacvm, type CliRun } from '../test/support/run-macvm.js';
import { createTestHome, type TestHome } from '../test/support/vm-home.js';

const HOLDS_VM = 'test/fixtures/runner/holds-vm.spec.ts';
type KillPoint = 'slot wait' | 'clone' | 'boot' | 'mid-suite' | 'teardown';
const POINTS: KillPoint[] = ['slot wait', 'clone', 'boot', 'mid-suite', 'teardown'];
const SIGNALS: NodeJS.Signals[] = ['SIGKILL', 'SIGTERM', 'SIGINT'];
const LEAK_AFTER_MS = 15_000;

/** `--points clone,boot`: only those kill points (default: all five). */
function pointsWanted(): KillPoint[] {
  const i = process.argv.indexOf('--points');
  if (i < 0) return POINTS;
  const slug = (point: string) => point.trim().replace(' ', '-');
  const wanted = process.argv[i + 1]!.split(',').map((name) => POINTS.find((point) => slug(point) === slug(name)) ?? name) as KillPoint[];
  const unknown = wanted.filter((p) => !POINTS.includes(p));
  if (unknown.length) throw new Error(`--points: unknown ${unknown.join(', ')}; use ${POINTS.map(slug).join(',')}`);
  return wanted;
}

function trialsWanted(): number {
  const i = process.argv.indexOf('--trials');
  return Number(i >= 0 ? process.argv[i + 1] : process.env.MACVM_BENCH_TRIALS) || 2;
}

/** The files in a dir, or "gone" when it went while we looked. */
function filesIn(dir: string): string {
  try {
    return readdirSync(dir).join(' ');
  } catch {
    return 'gone';
  }
}

async function leftover(home: TestHome, pids: number[]): Promise<string[]> {
  const left: string[] = [];
  const { runtimeDirs, qemuPids } = await home.leftovers();
  if (qemuPids.length) left.push(`${qemuPids.length} qemu`);
  // What is in a leftover dir says which step left it (a record? a disk? a staging name?).
  if (runtimeDirs.length) left.push(`${runtimeDirs.length} clone dir(s): ${runtimeDirs.map((name) => `${name} [${filesIn(join(home.home, 'run', name))}]`).join(', ')}`);
  const slots = join(home.home, 'slots', 'qemu');
  if (existsSync(slots) && readdirSync(slots).some((n) => n.startsWith('slot-'))) left.push('slot');
  const sessions = join(home.home, 'sessions');
  if (existsSync(sessions) && readdirSync(sessions).length) left.push('session dir');
  for (const pid of pids) if (await isRunning(pid)) left.push(`pid ${pid}`);
  return left;
}

/** Resolves when the run's stderr shows a progress line with `state`. */
function whenState(run: CliRun, state: RegExp): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    const on = (chunk: Buffer) => {
      seen += chunk.toString();
      if (state.test(seen)) {
        run.child.stderr!.off('data', on);
        resolve();
      }
    };
    run.child.stderr!.on('data', on);
  });
}

async function trial(home: TestHome, point: KillPoint, signal: NodeJS.Signals): Promise<{ leaked: string[]; cleanupMs: number }> {
  const env = (extra: NodeJS.ProcessEnv) => ({ env: { MACVM_HOME: home.home, CI: '', MACVM_REPORTS_DIR: join(home.home, 'reports'), ...extra } });
  let holder: CliRun | undefined;
  if (point === 'slot wait') {
    holder = runMacvm(['test', HOLDS_VM], env({ MACVM_SLOTS_QEMU: '1', MACVM_TEST_HOLD_MS: '4000' }));
    await whenState(holder, /  ready/);
  }
  const pattern: Record<KillPoint, RegExp> = {
    'slot wait': /waiting for slot/,
    clone: /  clone\n/,
    boot: /  boot\n/,
    'mid-suite': /  ready/,
    teardown: /tearing down/,
  };
  const run = runMacvm(['test', HOLDS_VM], env({ MACVM_SLOTS_QEMU: holder ? '1' : '2', MACVM_TEST_HOLD_MS: point === 'teardown' ? '0' : '300000' }));
  await Promise.race([whenState(run, pattern[point]), run.done]);
  const pids = descendants(run.child.pid!);
  const killedAt = Date.now();
  try {
    process.kill(run.child.pid!, signal);
  } catch {
    // it had finished already
  }
  await run.done;
  // Cleanup time: kill → everything of the killed run gone (with a holder running, its own
  // VM and slot are not the killed run's: only the killed run's processes count here).
  const mine = async () => (holder ? (await leftover(home, pids)).filter((l) => l.startsWith('pid')) : leftover(home, pids));
  let left = await mine();
  while (left.length && Date.now() - killedAt < LEAK_AFTER_MS) {
    await sleep(50);
    left = await mine();
  }
  const cleanupMs = Date.now() - killedAt;
  if (holder) {
    await holder.done;
    const end = Date.now() + LEAK_AFTER_MS;
    left = await leftover(home, pids);
    while (left.length && Date.now() < end) {
      await sleep(100);
      left = await leftover(home, pids);
    }
  }
  if (left.length) {
    // Clean by hand so the next trial starts from nothing.
    for (const pid of [...pids, ...(await home.leftovers()).qemuPids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const { sweepDeadSessions } = await import('../src/runner/gc.js');
    await sweepDeadSessions({ home: home.home, all: true });
  }
  return { leaked: left, cleanupMs };
}

export async function run(): Promise<void> {
  const trials = trialsWanted();
  const home = await createTestHome();
  const rows: string[] = [];
  try {
    console.log(`${trials} trial(s) per cell; signal sent to the runner pid alone; leak = anything left ${LEAK_AFTER_MS / 1000} s after the kill`);
    console.log('| kill point | signal | trials | leaks | median cleanup | max cleanup |');
    console.log('|---|---|---|---|---|---|');
    for (const point of pointsWanted()) {
      for (const signal of SIGNALS) {
        const results = [];
        for (let i = 0; i < trials; i++) results.push(await trial(home, point, signal));
        const ms = results.map((r) => r.cleanupMs).sort((a, b) => a - b);
        const leaks = results.filter((r) => r.leaked.length);
        const row = `| ${point} | ${signal} | ${trials} | ${leaks.length}${leaks.length ? ` (${leaks.map((l) => l.leaked.join(', ')).join('; ')})` : ''} | ${ms[Math.floor((ms.length - 1) / 2)]} ms | ${ms[ms.length - 1]} ms |`;
        rows.push(row);
        console.log(row);
      }
    }
  } finally {
    await home.cleanup();
  }
}
