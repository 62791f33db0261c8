import { describe, expect, test } from 'vitest';
import { normalCdf } from '../../src/bench/normal.js';
import { ratioOfMedians } from '../../src/bench/ratio.js';
import { seededRandom, normalDeviate } from '../../src/bench/prng.js';
import { binomialHalfCdf, mean, median, medianConfidenceInterval, minSamplesForMedianCI, summarize } from '../../src/bench/stats.js';
import { isMacvmError } from '../../src/errors.js';

describe('median and mean', () => {
  test('odd count takes the middle value, even count the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5); // (2 + 3) / 2
    expect(median([7])).toBe(7);
    expect(mean([1, 2, 3, 10])).toBe(4); // 16 / 4
  });

  test('no samples or a non-finite one is a coded error, never NaN', () => {
    expect(() => median([])).toThrow(expect.objectContaining({ code: 'MACVM_BENCH_INVALID' }));
    expect(() => mean([1, Number.NaN])).toThrow(expect.objectContaining({ code: 'MACVM_BENCH_INVALID' }));
  });
});

describe('binomial(n, ½) distribution function', () => {
  test('hand-computed values', () => {
    // n = 6: C(6,0) + C(6,1) = 1 + 6 = 7 of 64 outcomes.
    expect(binomialHalfCdf(6, 1)).toBeCloseTo(7 / 64, 15);
    // n = 10: 1 + 10 + 45 = 56 of 1024.
    expect(binomialHalfCdf(10, 2)).toBeCloseTo(56 / 1024, 15);
    expect(binomialHalfCdf(10, 10)).toBe(1);
    expect(binomialHalfCdf(10, -1)).toBe(0);
  });

  test('stays finite for large n (2⁻²⁰⁰⁰ alone would underflow)', () => {
    expect(binomialHalfCdf(2000, 1000)).toBeGreaterThan(0.5);
    expect(binomialHalfCdf(2000, 1000)).toBeLessThan(0.52);
  });
});

describe('distribution-free 95 % CI of the median (order statistics)', () => {
  test('n = 6: only [min, max] reaches 95 % (coverage 1 − 2/64 = 0.96875)', () => {
    const ci = medianConfidenceInterval([6, 2, 5, 1, 4, 3]);
    expect(ci).toEqual({ low: 1, high: 6, confidence: 1 - 2 / 64 });
  });

  test('n = 10: [x(2), x(9)] with coverage 1 − 2·11/1024; [x(3), x(8)] would cover only 0.89', () => {
    const ci = medianConfidenceInterval([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(ci.low).toBe(2);
    expect(ci.high).toBe(9);
    expect(ci.confidence).toBeCloseTo(1 - 22 / 1024, 12);
  });

  test('n = 5 cannot reach 95 %: [min, max] with its true coverage 1 − 2/32', () => {
    const ci = medianConfidenceInterval([5, 1, 3, 2, 4]);
    expect(ci).toEqual({ low: 1, high: 5, confidence: 0.9375 });
    expect(minSamplesForMedianCI()).toBe(6);
  });

  test('a single sample is its own interval with coverage 0', () => {
    expect(medianConfidenceInterval([42])).toEqual({ low: 42, high: 42, confidence: 0 });
  });

  test('zero variance: the interval collapses onto the value', () => {
    expect(summarize([3, 3, 3, 3, 3, 3, 3])).toEqual({ samples: [3, 3, 3, 3, 3, 3, 3], medianMs: 3, meanMs: 3, ciLowMs: 3, ciHighMs: 3 });
  });

  test('covers the true median of a skewed distribution in ≥ 95 % of 1000 seeded trials', () => {
    // Exponential(1) has median ln 2. The interval is conservative by construction.
    const random = seededRandom(11);
    let covered = 0;
    for (let trial = 0; trial < 1000; trial++) {
      const samples = Array.from({ length: 15 }, () => -Math.log(1 - random()));
      const ci = medianConfidenceInterval(samples);
      if (ci.low <= Math.LN2 && Math.LN2 <= ci.high) covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(950);
    expect(covered).toBeLessThan(1000); // it is an interval, not "everything"
  });
});

describe('standard normal distribution function', () => {
  test('matches reference values (Python math.erfc) to 1e-12', () => {
    expect(normalCdf(0)).toBe(0.5);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316300957, 12);
    expect(normalCdf(-1)).toBeCloseTo(0.15865525393145707, 12);
    expect(normalCdf(0.5)).toBeCloseTo(0.6914624612740131, 12);
    expect(normalCdf(1.96)).toBeCloseTo(0.9750021048517795, 12);
    expect(normalCdf(4)).toBeCloseTo(0.9999683287581669, 12);
    // the far tail keeps relative precision (continued-fraction branch)
    expect(normalCdf(-8) / 6.22096057427178e-16).toBeCloseTo(1, 8);
  });
});

describe('guest/host ratio of medians with a bootstrap CI', () => {
  test('the point estimate is median(guest) / median(host); zero variance gives a zero-width CI', () => {
    const r = ratioOfMedians([10, 10, 10, 10, 10, 10], [25, 25, 25, 25, 25, 25]);
    expect(r).toEqual({ median: 2.5, ciLow: 2.5, ciHigh: 2.5 });
    expect(ratioOfMedians([1, 2, 3], [3, 6, 9]).median).toBe(3); // 6 / 2
  });

  test('same samples and seed give the same interval; the interval contains the estimate', () => {
    const random = seededRandom(5);
    const host = Array.from({ length: 12 }, () => 100 * Math.exp(0.05 * normalDeviate(random)));
    const guest = Array.from({ length: 12 }, () => 140 * Math.exp(0.05 * normalDeviate(random)));
    const a = ratioOfMedians(host, guest);
    const b = ratioOfMedians(host, guest);
    expect(a).toEqual(b);
    expect(a.ciLow).toBeLessThanOrEqual(a.median);
    expect(a.ciHigh).toBeGreaterThanOrEqual(a.median);
    expect(a.ciHigh - a.ciLow).toBeGreaterThan(0);
    expect(ratioOfMedians(host, guest, { seed: 6 })).not.toEqual(a);
  });

  test('covers the true ratio in most of 300 seeded trials (percentile bootstrap, n = 15)', () => {
    const random = seededRandom(21);
    let covered = 0;
    for (let trial = 0; trial < 300; trial++) {
      const host = Array.from({ length: 15 }, () => 100 * Math.exp(0.1 * normalDeviate(random)));
      const guest = Array.from({ length: 15 }, () => 150 * Math.exp(0.1 * normalDeviate(random)));
      const r = ratioOfMedians(host, guest, { resamples: 500 });
      if (r.ciLow <= 1.5 && 1.5 <= r.ciHigh) covered++;
    }
    // Nominal 95 %; percentile bootstraps of medians run a little short at small n.
    expect(covered / 300).toBeGreaterThan(0.88);
    expect(covered).toBeLessThan(300);
  });

  test('a host median of 0 is a coded error, not Infinity', () => {
    try {
      ratioOfMedians([0, 0, 0], [1, 1, 1]);
      expect.unreachable();
    } catch (error) {
      expect(isMacvmError(error, 'MACVM_BENCH_INVALID')).toBe(true);
    }
  });
});
