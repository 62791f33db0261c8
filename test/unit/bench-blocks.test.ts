import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { batchRatioInterval } from '../../src/bench/batch-means.js';
import { MAX_ROUNDS_PER_EXEC, expectedBlockMs, roundsPerExec, type BlockTiming } from '../../src/bench/batching.js';
import { commandBatchScript, commandBlock, splitRounds } from '../../src/bench/command-rounds.js';
import { functionBlock, installFnRunner } from '../../src/bench/function-rounds.js';
import { hostNode } from '../../src/bench/node-runtime.js';
import { normalDeviate, seededRandom, type Random } from '../../src/bench/prng.js';
import { RoundSampler, SAMPLING_DEFAULTS, type SamplingPlan } from '../../src/bench/sampling.js';
import { localShell } from '../../src/bench/shell.js';
import { withoutSteal, type PreparedSide } from '../../src/bench/side.js';
import { dateTimer } from '../../src/bench/timers.js';
import { collectWorkloads, type CommandWorkload, type FunctionWorkload } from '../../src/bench/workloads.js';
import { isMacvmError } from '../../src/errors.js';

// Synthetic streams come from the seeded PRNG; the "time" the sampler sees is a counter the
// test advances. The command and function blocks run for real on this host; what is checked
// is their shape (rounds, markers, errors), never a time.

/** One block of k rounds: a shared block effect (a process, a moment) times per-round noise. */
function block(random: Random, k: number, centre: number, blockSpread: number, roundSpread: number): number[] {
  const shared = Math.exp(blockSpread * normalDeviate(random));
  return Array.from({ length: k }, () => centre * shared * Math.exp(roundSpread * normalDeviate(random)));
}

describe('adaptive rounds in blocks', () => {
  const plan = (overrides: Partial<SamplingPlan>): SamplingPlan => ({ ...SAMPLING_DEFAULTS, warmup: 0, ...overrides });

  test('precision cannot stop a run before its rounds span minBlocks blocks, however narrow the interval', () => {
    const random = seededRandom(3);
    const sampler = new RoundSampler(plan({ precision: 0.5, minRounds: 2, minBlocks: 4 }));
    let outcome;
    let blocks = 0;
    while (!outcome) {
      blocks++;
      outcome = sampler.addBlock(block(random, 5, 100, 0, 0.001), block(random, 5, 300, 0, 0.001), blocks * 1000, 1000);
    }
    expect(outcome.endedBy).toBe('precision');
    expect(blocks).toBe(4);
    expect(new Set(sampler.measuredBlocks()).size).toBe(4);
  });

  test('the budget ends it before a block that would overrun, judged by the next block\'s expected length', () => {
    const random = seededRandom(4);
    const sampler = new RoundSampler(plan({ precision: 0.001, maxTimeMs: 10_000 }));
    const first = sampler.addBlock(block(random, 3, 100, 0, 0.3), block(random, 3, 300, 0, 0.3), 3_000, 3_000);
    expect(first).toBeUndefined();
    // 6 s spent, and the next block should take 5 s: stop now rather than overrun 10 s.
    expect(sampler.addBlock(block(random, 3, 100, 0, 0.3), block(random, 3, 300, 0, 0.3), 6_000, 5_000)).toMatchObject({ endedBy: 'maxTime' });
  });

  test('fixed rounds fed in blocks keep exactly that many, the surplus of the last block dropped', () => {
    const random = seededRandom(5);
    const sampler = new RoundSampler(plan({ rounds: 7 }));
    let outcome;
    while (!outcome) outcome = sampler.addBlock(block(random, 3, 100, 0, 0.1), block(random, 3, 300, 0, 0.1), 0, 0);
    expect(outcome.endedBy).toBe('rounds');
    expect(sampler.measured).toBe(7);
    expect(sampler.measuredBlocks()).toEqual([0, 0, 0, 1, 1, 1, 2]);
  });

  test('adaptive stopping on blocks keeps the final interval covering the true ratio in most runs', () => {
    // Each run stops at a planned check whose interval is within ±5 %; that interval must
    // still cover the truth (3.0) about as often as a fixed-size one would.
    let covered = 0;
    let stoppedOnPrecision = 0;
    const runs = 80;
    for (let seed = 0; seed < runs; seed++) {
      const random = seededRandom(1000 + seed);
      const sampler = new RoundSampler(plan({ precision: 0.05, minRounds: 10, minBlocks: 5, maxTimeMs: 1e9 }));
      let outcome;
      let elapsed = 0;
      while (!outcome) {
        elapsed += 1000;
        outcome = sampler.addBlock(block(random, 2, 100, 0.03, 0.05), block(random, 2, 300, 0.05, 0.08), elapsed, 1000);
      }
      if (outcome.endedBy === 'precision') stoppedOnPrecision++;
      // The interval the run reports (batch means, batch boundaries between execs).
      const r = batchRatioInterval(sampler.measuredSamples('host'), sampler.measuredSamples('guest'), sampler.measuredBlocks());
      if (r.ciLow <= 3 && 3 <= r.ciHigh) covered++;
    }
    expect(stoppedOnPrecision).toBe(runs);
    expect(covered / runs).toBeGreaterThan(0.85);
  }, 60_000);
});

describe('rounds per exec', () => {
  const timing = (overrides: Partial<BlockTiming>): BlockTiming => ({ rounds: 1, guestExecMs: 1100, guestRoundsMs: 900, hostExecMs: 60, hostRoundsMs: 50, ...overrides });

  test('a long round with little exec overhead stays at one or two per exec; a costly start (node) batches the most', () => {
    expect(roundsPerExec(timing({ guestExecMs: 1000, guestRoundsMs: 950 }), Infinity, Infinity)).toBe(1);
    expect(roundsPerExec(timing({}), Infinity, Infinity)).toBe(2); // 200 ms overhead on 900 ms rounds
    expect(roundsPerExec(timing({ guestExecMs: 2450, guestRoundsMs: 650, hostExecMs: 700, hostRoundsMs: 600 }), Infinity, Infinity)).toBe(MAX_ROUNDS_PER_EXEC);
  });

  test('never more than the rounds still wanted, nor than fits in the time left; at least one', () => {
    const fn = timing({ guestExecMs: 2450, guestRoundsMs: 650, hostExecMs: 700, hostRoundsMs: 600 });
    expect(roundsPerExec(fn, 2, Infinity)).toBe(2);
    // Overhead 1.9 s, 1.25 s per round on both sides: 6 s left fit 3 rounds.
    expect(roundsPerExec(fn, Infinity, 6_000)).toBe(3);
    expect(roundsPerExec(fn, Infinity, 100)).toBe(1);
    expect(expectedBlockMs(fn, 3)).toBeCloseTo(1900 + 3 * 1250, 6);
  });
});

describe('steal taken out of the guest\'s CPU time', () => {
  test('each round keeps the share of the vCPU\'s busy time it really ran', () => {
    expect(withoutSteal(1200, { runMs: 600, waitMs: 600 })).toBe(600);
    expect(withoutSteal(1000, { runMs: 900, waitMs: 0 })).toBe(1000);
    // An idle exec (no busy time) leaves the figure alone rather than dividing by zero.
    expect(withoutSteal(5, { runMs: 0, waitMs: 0 })).toBe(5);
  });
});

describe('several rounds per exec, run for real on this host', () => {
  const dir = mkdtempSync(join(tmpdir(), 'macvm-bench-blocks-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const side: PreparedSide = { side: 'host', shell: localShell(), dir, timer: dateTimer(), node: hostNode() };
  const command = (cmd: string, options: { env?: Record<string, string>; cwd?: string } = {}) => collectWorkloads((b) => b.command(cmd, options))[0] as CommandWorkload;

  test('a command batch gives one reading per round, each with its CPU time, the exec timed around them', async () => {
    const result = await commandBlock(side, command('i=0; while [ $i -lt $N ]; do i=$((i+1)); done', { env: { N: '2000' } }), 3);
    expect(result.rounds).toHaveLength(3);
    for (const round of result.rounds) {
      expect(round.wallMs).toBeGreaterThan(0);
      expect(round.cpuMs).toBeGreaterThan(0);
    }
    expect(result.roundsMs).toBeCloseTo(result.rounds.reduce((sum, r) => sum + r.wallMs, 0), 9);
    expect(result.execMs).toBeGreaterThanOrEqual(result.roundsMs);
    // The host shell has no vCPU clock.
    expect(result.vcpu).toBeUndefined();
  });

  test('the batch script marks each round, so their lines are told apart', async () => {
    const script = commandBatchScript(side, 'echo hi', 2);
    const out = await localShell().exec(script);
    expect(splitRounds(out.stdout)).toHaveLength(2);
    expect(splitRounds('nothing marked')).toEqual([]);
  });

  test('a round that fails names its side and quotes its own output', async () => {
    // The second round fails (a counter file in the temp dir tells the rounds apart).
    const error = await commandBlock(side, command('n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ "$n" -lt 1 ] || { echo "round $n broke"; exit 3; }', { cwd: dir }), 3).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_EXEC_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/failed on the host \(exit 3\)/);
    expect((error as { hint?: string }).hint).toMatch(/round 1 broke/);
  });

  test('a function batch runs its rounds in one node process, one result per round', async () => {
    await installFnRunner(side);
    const workload = collectWorkloads((b) => b.fn('sum', () => Array.from({ length: 100 }, (_, i) => i).reduce((a, b) => a + b, 0), { timeMs: 20 }))[0] as FunctionWorkload;
    const result = await functionBlock(side, workload, 0, 3);
    expect(result.rounds).toHaveLength(3);
    expect(result.rounds.every((r) => r.wallMs > 0)).toBe(true);
    expect(result.roundsMs).toBeGreaterThan(0);
    expect(result.execMs).toBeGreaterThan(result.roundsMs);
  }, 30_000);
});
