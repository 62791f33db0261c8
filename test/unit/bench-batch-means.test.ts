import { describe, expect, test } from 'vitest';
import { BATCHES, batchLogHalfWidth, batchLogRatios, batchRatioInterval, compareBatches, tQuantile, timeBatches } from '../../src/bench/batch-means.js';
import { mannWhitneyU } from '../../src/bench/mann-whitney.js';
import { normalDeviate, seededRandom, type Random } from '../../src/bench/prng.js';
import { ratioOfMedians } from '../../src/bench/ratio.js';
import { RoundSampler, SAMPLING_DEFAULTS } from '../../src/bench/sampling.js';
import { incompleteBeta, logGamma, studentTwoSidedP, welchTest } from '../../src/bench/student-t.js';

// Reference values from R (pt, pbeta, lgamma, t.test) — scipy gives the same digits. The
// synthetic streams come from the seeded PRNG: a drifting "machine" as an AR(1) process.

describe("Student's t and Welch's test", () => {
  test('distribution values match R', () => {
    expect(studentTwoSidedP(2, 5)).toBeCloseTo(0.10193947882985835, 12); // 2*pt(-2, 5)
    expect(studentTwoSidedP(2.306, 8)).toBeCloseTo(0.050000322761284174, 12);
    expect(studentTwoSidedP(0.5, 3.7)).toBeCloseTo(0.6453356333199318, 12);
    expect(studentTwoSidedP(10, 30) / 4.575251408229618e-11).toBeCloseTo(1, 9);
    expect(incompleteBeta(0.3, 2.5, 0.5)).toBeCloseTo(0.018927124071945658, 12); // pbeta(0.3, 2.5, 0.5)
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(logGamma(10.3)).toBeCloseTo(13.482036786138359, 11);
    expect(tQuantile(0.95, 4)).toBeCloseTo(2.7764451051977987, 9); // qt(0.975, 4)
  });

  test("Welch's test matches R's t.test(x, y)", () => {
    const r = welchTest([1, 2, 3, 4.5], [2.5, 3.9, 5.1, 6.0, 7.2]);
    expect(r.t).toBeCloseTo(-2.0942795109501846, 12);
    expect(r.df).toBeCloseTo(6.978422529910609, 10);
    expect(r.pValue).toBeCloseTo(0.07462035866847046, 10);
    expect(welchTest([3, 3], [3, 3]).pValue).toBe(1);
    expect(welchTest([3, 3], [4, 4]).pValue).toBe(0);
    expect(() => welchTest([1], [1, 2])).toThrow(expect.objectContaining({ code: 'MACVM_BAD_ARGUMENT' }));
  });
});

describe('batches of rounds in the order they ran', () => {
  test('three contiguous batches of about equal size; fewer rounds, one round each', () => {
    expect(timeBatches(9)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
    expect(timeBatches(10).map((b) => b.length)).toEqual([4, 3, 3]);
    expect(timeBatches(2)).toEqual([[0], [1]]);
    expect(timeBatches(0)).toEqual([]);
  });

  test('a batch boundary never splits the rounds of one exec', () => {
    // Execs of 3, 3, 3, 1 rounds: a cut due inside an exec moves to its end.
    const blocks = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3];
    const batches = timeBatches(10, blocks);
    for (const batch of batches) expect(new Set(batch.map((r) => blocks[r])).size).toBeGreaterThanOrEqual(1);
    for (let exec = 0; exec < 4; exec++) {
      const holding = batches.filter((batch) => batch.some((r) => blocks[r] === exec));
      expect(holding).toHaveLength(1);
    }
    expect(batches.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('batch ratios are the log of median guest / median host within each batch', () => {
    const host = [10, 10, 10, 10, 10, 10, 10, 10, 10];
    const guest = [20, 22, 21, 30, 30, 50, 40, 40, 20];
    expect(batchLogRatios(host, guest).map((x) => Number(Math.exp(x).toFixed(6)))).toEqual([2.1, 3, 4]);
  });

  test('the interval is centred on the whole-run ratio and as wide as t(2) × sd of the batches / √3', () => {
    const host = Array.from({ length: 10 }, () => 10);
    const guest = [20, 22, 20, 22, 30, 30, 20, 20, 40, 40];
    const ci = batchRatioInterval(host, guest);
    expect(ci.median).toBe(2.2); // median(guest) 22 / median(host) 10
    const half = batchLogHalfWidth(batchLogRatios(host, guest));
    expect(Math.log(ci.ciHigh / ci.median)).toBeCloseTo(half, 12);
    expect(Math.log(ci.median / ci.ciLow)).toBeCloseTo(half, 12);
    expect(batchLogHalfWidth([0.1])).toBe(Number.POSITIVE_INFINITY);
  });
});

/**
 * A machine whose speed drifts: log-speed is AR(1) with correlation `rho` from round to round
 * (0.7 here: a correlation time of ~3 rounds, inside a batch of 20; the real qemu guest's
 * per-round log ratios had a lag-1 correlation of 0.4).
 */
function drifting(random: Random, rounds: number, rho: number, spread: number): { host: number[]; guest: number[] } {
  let state = spread * normalDeviate(random);
  const host: number[] = [];
  const guest: number[] = [];
  for (let i = 0; i < rounds; i++) {
    state = rho * state + Math.sqrt(1 - rho * rho) * spread * normalDeviate(random);
    // The guest feels the drift (a TCG guest does), the host hardly; plus noise of their own.
    host.push(100 * Math.exp(0.02 * normalDeviate(random)));
    guest.push(300 * Math.exp(state + 0.03 * normalDeviate(random)));
  }
  return { host, guest };
}

describe('a drifting machine: batch means stay honest where single rounds do not', () => {
  test('coverage of the true ratio (3.0): batch-means interval near 95 %, per-round bootstrap far below', () => {
    const random = seededRandom(17);
    let batchCovered = 0;
    let roundCovered = 0;
    const trials = 300;
    for (let t = 0; t < trials; t++) {
      const { host, guest } = drifting(random, 60, 0.7, 0.1);
      const batch = batchRatioInterval(host, guest);
      const round = ratioOfMedians(host, guest, { resamples: 400 });
      if (batch.ciLow <= 3 && 3 <= batch.ciHigh) batchCovered++;
      if (round.ciLow <= 3 && 3 <= round.ciHigh) roundCovered++;
    }
    // Measured with this seed: 94 % against 68 %.
    expect(batchCovered / trials).toBeGreaterThan(0.9);
    expect(roundCovered / trials).toBeLessThan(0.8);
  }, 30_000);

  test('A/A: two runs of the same drifting machine are rarely "different" by batch means, often by a per-round test', () => {
    const random = seededRandom(23);
    let batchAlarms = 0;
    let roundAlarms = 0;
    const trials = 400;
    for (let t = 0; t < trials; t++) {
      const a = drifting(random, 60, 0.7, 0.1);
      const b = drifting(random, 60, 0.7, 0.1);
      if (compareBatches(batchLogRatios(b.host, b.guest), batchLogRatios(a.host, a.guest))!.pValue < 0.05) batchAlarms++;
      const ratios = (r: { host: number[]; guest: number[] }) => r.guest.map((g, i) => g / r.host[i]!);
      if (mannWhitneyU(ratios(b), ratios(a)).pValue < 0.05) roundAlarms++;
    }
    // Measured with this seed: 4 % against 35 %.
    expect(batchAlarms / trials).toBeLessThan(0.08);
    expect(roundAlarms / trials).toBeGreaterThan(0.25);
  }, 30_000);

  test('the adaptive sampler stops on the batch-means interval, which then covers the truth about as often as asked', () => {
    let covered = 0;
    let stopped = 0;
    const runs = 60;
    for (let seed = 0; seed < runs; seed++) {
      const random = seededRandom(500 + seed);
      const stream = drifting(random, 2000, 0.5, 0.06);
      const sampler = new RoundSampler({ ...SAMPLING_DEFAULTS, warmup: 0, precision: 0.03, maxTimeMs: 1e9 });
      let outcome;
      for (let round = 0; !outcome; round++) outcome = sampler.add(stream.host[round]!, stream.guest[round]!, round * 1000, 1000);
      if (outcome.endedBy === 'precision') stopped++;
      const ci = batchRatioInterval(sampler.measuredSamples('host'), sampler.measuredSamples('guest'));
      expect((ci.ciHigh - ci.ciLow) / 2 / ci.median).toBeCloseTo(outcome.halfWidth, 12);
      if (ci.ciLow <= 3 && 3 <= ci.ciHigh) covered++;
    }
    expect(stopped).toBe(runs);
    expect(covered / runs).toBeGreaterThan(0.85);
  }, 60_000);

  test('three batches, as documented', () => {
    expect(BATCHES).toBe(3);
  });
});
