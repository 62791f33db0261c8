import { describe, expect, test } from 'vitest';
import { compareWithBaseline } from '../../src/bench/compare.js';
import { assertBenchOptions } from '../../src/bench/options.js';
import { normalDeviate, seededRandom, type Random } from '../../src/bench/prng.js';
import {
  RoundSampler,
  SAMPLING_DEFAULTS,
  inversionDistribution,
  mannKendallDown,
  ratioHalfWidth,
  settled,
  type SamplingOutcome,
  type SamplingPlan,
} from '../../src/bench/sampling.js';
import { wilsonInterval } from '../../src/bench/stats.js';
import { isMacvmError } from '../../src/errors.js';
import { runBenchInMacVM } from '../../src/fixtures/bench-macvm.js';

// Synthetic sample streams from the seeded PRNG. "Time" here is a round counter the test
// advances itself (each round "takes" `roundMs`), never a clock: nothing below measures time.

/** Log-normal noise around `centre` with relative spread `spread`. */
const noisy = (random: Random, centre: number, spread: number) => centre * Math.exp(spread * normalDeviate(random));

interface Stream {
  host: (round: number) => number;
  guest: (round: number) => number;
}

function drive(plan: Partial<SamplingPlan>, stream: Stream, roundMs = 1000, limit = 10_000): { sampler: RoundSampler; outcome: SamplingOutcome; elapsed: number } {
  const sampler = new RoundSampler({ ...SAMPLING_DEFAULTS, ...plan });
  let elapsed = 0;
  for (let round = 0; round < limit; round++) {
    elapsed += roundMs;
    const outcome = sampler.add(stream.host(round), stream.guest(round), elapsed, roundMs);
    if (outcome) return { sampler, outcome, elapsed };
  }
  throw new Error('the sampler never stopped');
}

function steady(seed: number, spread: number, guestFactor = 16): Stream {
  const random = seededRandom(seed);
  return { host: () => noisy(random, 20, spread), guest: () => noisy(random, 20 * guestFactor, spread) };
}

describe('Mann-Kendall test for a downward trend', () => {
  test('inversion counts follow the Mahonian numbers', () => {
    // Permutations of 4 by inversions: 1, 3, 5, 6, 5, 3, 1 (of 24).
    expect(Array.from(inversionDistribution(4), (p) => Math.round(p * 24))).toEqual([1, 3, 5, 6, 5, 3, 1]);
    const big = inversionDistribution(12);
    expect(big.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  test('exact one-sided p-values for small n', () => {
    // Strictly falling: S = −3, and only the fully reversed order of 3! has it.
    expect(mannKendallDown([3, 2, 1])).toEqual({ s: -3, pValue: 1 / 6 });
    // Strictly rising: every ordering has S ≥ −3, so P(S ≤ 3) = 1.
    expect(mannKendallDown([1, 2, 3]).pValue).toBeCloseTo(1, 12);
    // n = 6 falling: p = 1/720 — strong evidence from only six samples.
    expect(mannKendallDown([6, 5, 4, 3, 2, 1]).pValue).toBeCloseTo(1 / 720, 12);
  });

  test('the normal approximation beyond 40 samples agrees in direction and size', () => {
    const random = seededRandom(3);
    const falling = Array.from({ length: 60 }, (_, i) => 100 - i + normalDeviate(random) * 5);
    expect(mannKendallDown(falling).pValue).toBeLessThan(0.001);
    const flat = Array.from({ length: 60 }, () => 100 + normalDeviate(random) * 5);
    expect(mannKendallDown(flat).pValue).toBeGreaterThan(0.05);
  });
});

describe('warm-up ends when the samples stop trending', () => {
  test('a window whose oldest sample is its maximum is not settled, even when Mann-Kendall cannot tell', () => {
    // The issue-14 case: one slow sample, then flat ones.
    const window = [33.7, 21.5, 21.6, 21.4, 21.5, 21.6];
    expect(mannKendallDown(window).pValue).toBeGreaterThan(0.1); // the trend test alone would pass it
    expect(settled(window)).toBe(false);
    expect(settled([21.5, 33.7, 21.6, 21.4, 21.5, 21.6])).toBe(true);
  });

  test('two slow rounds at the start are discarded and kept, marked, in order', () => {
    const random = seededRandom(7);
    const slow = [40, 33.7];
    const stream: Stream = {
      host: (round) => slow[round] ?? noisy(random, 21.5, 0.01),
      guest: (round) => (slow[round] ?? noisy(random, 21.5, 0.01)) * 16,
    };
    const { sampler, outcome } = drive({ rounds: 10 }, stream);
    expect(outcome.warmupEndedBy).toBe('trend');
    expect(outcome.warmupRounds).toBeGreaterThanOrEqual(2);
    expect(sampler.warmupSamples('host').slice(0, 2)).toEqual([40, 33.7]);
    expect(sampler.measuredSamples('host')).toHaveLength(10);
    expect(Math.max(...sampler.measuredSamples('host'))).toBeLessThan(30);
    // Nothing is lost: warm-up + measured is the whole stream, in order.
    expect([...sampler.warmupSamples('host'), ...sampler.measuredSamples('host')]).toEqual(sampler.host);
  });

  test('an exponential warm-up decay is waited out; a stationary stream needs little warm-up', () => {
    const random = seededRandom(11);
    const decaying: Stream = {
      host: (round) => noisy(random, 20 * (1 + 0.6 * Math.exp(-round / 1.5)), 0.01),
      guest: (round) => noisy(random, 320 * (1 + 0.3 * Math.exp(-round / 1.5)), 0.01),
    };
    const decay = drive({ rounds: 10 }, decaying).outcome;
    expect(decay.warmupEndedBy).toBe('trend');
    const flat = drive({ rounds: 10 }, steady(11, 0.01)).outcome;
    expect(flat.warmupEndedBy).toBe('trend');
    expect(decay.warmupRounds).toBeGreaterThan(flat.warmupRounds);
  });

  test('a stream that never stops falling hits the cap, and says so', () => {
    const random = seededRandom(5);
    const falling: Stream = { host: (round) => noisy(random, 100 - round, 0.001), guest: (round) => noisy(random, 1600 - 16 * round, 0.001) };
    const { outcome } = drive({ rounds: 6, maxWarmup: 4 }, falling);
    expect(outcome).toMatchObject({ warmupEndedBy: 'cap', warmupRounds: 4 });
  });

  test('a fixed warm-up discards exactly that many rounds; 0 discards none', () => {
    expect(drive({ rounds: 6, warmup: 3 }, steady(1, 0.05)).outcome).toMatchObject({ warmupRounds: 3, warmupEndedBy: 'fixed', endedBy: 'rounds' });
    const none = drive({ rounds: 6, warmup: 0 }, steady(1, 0.05));
    expect(none.outcome.warmupRounds).toBe(0);
    expect(none.sampler.host).toHaveLength(6);
  });
});

describe('adaptive rounds stop at the precision asked for, or at the time budget', () => {
  test('low noise: stops on precision, with the reported half-width within it', () => {
    const { outcome, sampler } = drive({ precision: 0.02 }, steady(21, 0.01));
    expect(outcome.endedBy).toBe('precision');
    expect(outcome.halfWidth).toBeLessThanOrEqual(0.02);
    expect(sampler.measured).toBeGreaterThanOrEqual(SAMPLING_DEFAULTS.minRounds);
    // The half-width is the one of the samples it kept, recomputed independently.
    expect(ratioHalfWidth(sampler.measuredSamples('host'), sampler.measuredSamples('guest'))).toBeCloseTo(outcome.halfWidth, 12);
  });

  test('a tighter target on the same stream takes at least as many rounds', () => {
    const loose = drive({ precision: 0.04 }, steady(33, 0.05)).sampler.measured;
    const tight = drive({ precision: 0.01 }, steady(33, 0.05)).sampler.measured;
    expect(tight).toBeGreaterThan(loose);
  });

  test('high noise: the budget ends it before overrunning, and the half-width says how far it got', () => {
    const { outcome, elapsed } = drive({ precision: 0.02, maxTimeMs: 30_000 }, steady(4, 0.4), 1000);
    expect(outcome.endedBy).toBe('maxTime');
    expect(outcome.halfWidth).toBeGreaterThan(0.02);
    expect(elapsed).toBeLessThanOrEqual(30_000);
  });

  test('a fixed count stops there whatever the precision', () => {
    const { outcome, sampler } = drive({ rounds: 7, warmup: 1 }, steady(9, 0.4));
    expect(outcome.endedBy).toBe('rounds');
    expect(sampler.measured).toBe(7);
  });

  test('auto warm-up with fewer fixed rounds than its window hands the oldest of the window to warm-up', () => {
    const { outcome, sampler } = drive({ rounds: 3 }, steady(2, 0.01));
    expect(sampler.measured).toBe(3);
    expect(outcome.warmupRounds).toBe(sampler.host.length - 3);
  });
});

describe('bench options go through the rule engine', () => {
  const bad = (options: object) => {
    try {
      assertBenchOptions(options, 'benchMacVM("x") options');
    } catch (error) {
      expect(isMacvmError(error, 'MACVM_BAD_ARGUMENT')).toBe(true);
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  test('valid shapes pass', () => {
    expect(() => assertBenchOptions({ rounds: 'auto', warmup: 'auto', precision: 0.02, maxTime: 60_000, baseline: false }, 'x')).not.toThrow();
    expect(() => assertBenchOptions({ rounds: 6, warmup: 0 }, 'x')).not.toThrow();
  });

  test('each bad value is named, with a did-you-mean where it is a typo', () => {
    expect(bad({ rounds: 'atuo' })).toMatch(/rounds must be one of "auto", got "atuo" \(did you mean "auto"\?\)/);
    expect(bad({ rounds: 0 })).toMatch(/rounds must be a positive integer, got 0/);
    expect(bad({ warmup: -1 })).toMatch(/warmup must be a non-negative integer/);
    expect(bad({ precision: 2 })).toMatch(/precision must be a number from 0 to 1, got 2/);
    expect(bad({ maxTime: 0 })).toMatch(/maxTime must be a number > 0/);
    expect(bad({ precison: 0.01 })).toMatch(/precison is not a known key \(did you mean "precision"\?\)/);
  });

  test('benchMacVM checks them before any VM starts', async () => {
    const error = await runBenchInMacVM('typo', { image: 'no-such-image', precison: 0.01, rounds: 'atuo' } as never, () => {}).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_BAD_ARGUMENT')).toBe(true);
    expect((error as Error).message).toMatch(/^runBenchInMacVM\("typo"\) options: /);
    expect((error as Error).message).toMatch(/rounds must be one of "auto"/);
    expect((error as Error).message).toMatch(/precison is not a known key \(did you mean "precision"\?\)/);
  });

  test('VM keys are accepted only where the caller adds them', () => {
    expect(bad({ image: 'linux-test' })).toMatch(/image is not a known key/);
    expect(() => assertBenchOptions({ image: 'linux-test' }, 'x', { image: { kind: 'string' } })).not.toThrow();
  });
});

describe('Wilson interval for an observed false-alarm rate', () => {
  test('reference values', () => {
    // 0 of 40: upper bound z²/(n+z²) = 3.8415/43.8415.
    const none = wilsonInterval(0, 40);
    expect(none.low).toBe(0);
    expect(none.high).toBeCloseTo(3.841459 / 43.841459, 5);
    // 2 of 40 (R: prop.test(2, 40, correct = FALSE)$conf.int → 0.01382, 0.16502).
    const two = wilsonInterval(2, 40);
    expect(two.low).toBeCloseTo(0.01382, 4);
    expect(two.high).toBeCloseTo(0.16502, 4);
  });

  test('bad counts are refused', () => {
    expect(() => wilsonInterval(5, 4)).toThrow(expect.objectContaining({ code: 'MACVM_BAD_ARGUMENT' }));
  });
});

describe('a CPU-time run against an older wall-time record compares like with like', () => {
  const stats = (samples: number[], wall?: number[]) => ({ samples, medianMs: 0, meanMs: 0, ciLowMs: 0, ciHighMs: 0, ...(wall ? { wall: { samples: wall, warmup: [], medianMs: 0 } } : {}) });
  const flat = (x: number) => Array.from({ length: 8 }, (_, i) => x + i * 0.01);

  test('wall samples recorded beside CPU time are what an old wall-only baseline is compared with', () => {
    // CPU-time ratio 2 (host CPU ≪ host wall), wall ratio 1 — the same as the old record.
    const current = { basis: 'cpu' as const, host: stats(flat(5), flat(10)), guest: stats(flat(10), flat(10)) };
    const oldRecord = { host: stats(flat(10)), guest: stats(flat(10)) };
    expect(compareWithBaseline(current, oldRecord, 'old').verdict).toBe('~');
    // Without the clock check the CPU ratio (2×) would read as a 100 % regression.
    expect(compareWithBaseline({ ...current, basis: undefined, host: stats(flat(5)) }, oldRecord, 'old').verdict).toBe('slower');
  });

  test('two CPU-time runs compare on CPU time', () => {
    const before = { basis: 'cpu' as const, host: stats(flat(5), flat(10)), guest: stats(flat(10), flat(10)) };
    const after = { basis: 'cpu' as const, host: stats(flat(5), flat(10)), guest: stats(flat(15), flat(10)) };
    expect(compareWithBaseline(after, before, 'x').verdict).toBe('slower');
  });
});
