/**
 * Prewarm: while a suite runs, the next suite's VM boots on a free slot. Runs the same
 * three-suite spec file through the real CLI with prewarm off and on (alternating), and
 * compares each wall time with Σ test time + one boot — the floor prewarm aims for.
 * PREWARM_RUNS sets the runs per mode (default 2), PREWARM_HOLD_MS the test time (5000).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResult } from '../src/shared/results.js';
import { runMacvm } from '../test/support/run-macvm.js';

export async function run(): Promise<void> {
  const runs = Number(process.env.PREWARM_RUNS ?? 2);
  const hold = process.env.PREWARM_HOLD_MS ?? '5000';
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-prewarm-'));
  const rows: Array<{ mode: string; wallS: number; testsS: number; bootS: number }> = [];
  try {
    for (let i = 0; i < runs; i++) {
      for (const prewarm of ['0', '1']) {
        const reports = join(dir, `r-${i}-${prewarm}`);
        const started = performance.now();
        const { code, stderr } = await runMacvm(['test', 'test/fixtures/runner/three-suites.spec.ts'], {
          env: { MACVM_REPORTS_DIR: reports, MACVM_TEST_PREWARM: prewarm, MACVM_TEST_HOLD_MS: hold, MACVM_SLOTS_QEMU: '2' },
        }).done;
        const wallS = (performance.now() - started) / 1000;
        if (code !== 0) throw new Error(`macvm test failed:\n${stderr}`);
        const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
        const testsS = result.suites.flatMap((s) => s.tests).reduce((sum, t) => sum + t.durationMs, 0) / 1000;
        const bootS = Math.min(...result.suites.map((s) => s.vm?.readyMs ?? Infinity)) / 1000;
        rows.push({ mode: prewarm === '1' ? 'prewarm on' : 'prewarm off', wallS, testsS, bootS });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log('three suites in one file, slots.qemu = 2 (wall includes CLI start and report)');
  console.log('mode          wall s   Σ tests + one boot s   wall / floor');
  for (const row of rows) {
    const floor = row.testsS + row.bootS;
    console.log(`${row.mode.padEnd(12)}  ${row.wallS.toFixed(1).padStart(6)}   ${floor.toFixed(1).padStart(20)}   ${(row.wallS / floor).toFixed(2).padStart(12)}`);
  }
  const mean = (mode: string) => rows.filter((r) => r.mode === mode).reduce((s, r) => s + r.wallS, 0) / runs;
  console.log(`prewarm saves ${(mean('prewarm off') - mean('prewarm on')).toFixed(1)} s per run (off/on wall ratio ${(mean('prewarm off') / mean('prewarm on')).toFixed(2)}×)`);
}
