import { MacvmError } from '../errors.js';
import type { SampleStats } from '../shared/bench-records.js';
import { normalCdf } from './normal.js';

/**
 * Descriptive statistics for benchmark samples, written out here (no stats library) so every
 * number in a report can be traced to a formula in this file.
 */

function requireSamples(samples: readonly number[], what: string): void {
  if (samples.length === 0) {
    throw new MacvmError('MACVM_BENCH_INVALID', `Cannot compute the ${what} of no samples.`, {
      hint: 'Run the workload for at least one round (rounds ≥ 1).',
    });
  }
  for (const s of samples) {
    if (!Number.isFinite(s)) {
      throw new MacvmError('MACVM_BENCH_INVALID', `A benchmark sample is not a finite number (${s}).`, { details: { samples: [...samples] } });
    }
  }
}

export function sortedCopy(samples: readonly number[]): number[] {
  return [...samples].sort((a, b) => a - b);
}

export function mean(samples: readonly number[]): number {
  requireSamples(samples, 'mean');
  let sum = 0;
  for (const s of samples) sum += s;
  return sum / samples.length;
}

/** The middle value, or the mean of the two middle values for an even count. */
export function median(samples: readonly number[]): number {
  requireSamples(samples, 'median');
  return medianOfSorted(sortedCopy(samples));
}

export function medianOfSorted(sorted: ArrayLike<number>): number {
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Interval {
  low: number;
  high: number;
  /** The coverage the interval really has (≥ the one asked for, or less when n is too small). */
  confidence: number;
}

/**
 * P(B ≤ k) for B ~ Binomial(n, ½). The terms are built in log space
 * (log pmf(0) = −n·ln 2, log pmf(i+1) = log pmf(i) + ln(n−i) − ln(i+1)) so that n in the
 * thousands neither overflows C(n, i) nor underflows 2⁻ⁿ before the sum.
 */
export function binomialHalfCdf(n: number, k: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  let logPmf = -n * Math.LN2;
  let sum = Math.exp(logPmf);
  for (let i = 0; i < k; i++) {
    logPmf += Math.log(n - i) - Math.log(i + 1);
    sum += Math.exp(logPmf);
  }
  return Math.min(1, sum);
}

/**
 * A distribution-free confidence interval of the median from order statistics, as benchstat
 * does: for sorted samples x(1) ≤ … ≤ x(n), the interval [x(j), x(n+1−j)] contains the true
 * median unless at least n+1−j samples fall on one side of it, so its coverage is
 *   P(j ≤ B ≤ n−j) = 1 − 2·P(B ≤ j−1),  B ~ Binomial(n, ½).
 * We take the largest j (the narrowest interval) whose coverage still reaches `confidence`.
 * Below n = 6 no interval reaches 95 % (even [min, max] covers only 1 − 2/2ⁿ = 93.75 % at
 * n = 5); then [min, max] is returned with its true, lower coverage, and callers warn.
 */
export function medianConfidenceInterval(samples: readonly number[], confidence = 0.95): Interval {
  requireSamples(samples, 'median confidence interval');
  const sorted = sortedCopy(samples);
  const n = sorted.length;
  let best = 0;
  let bestCoverage = 0;
  for (let j = 1; j <= Math.floor((n + 1) / 2); j++) {
    const coverage = 1 - 2 * binomialHalfCdf(n, j - 1);
    if (coverage >= confidence) {
      best = j;
      bestCoverage = coverage;
    } else break;
  }
  if (best === 0) {
    return { low: sorted[0]!, high: sorted[n - 1]!, confidence: Math.max(0, 1 - 2 * binomialHalfCdf(n, 0)) };
  }
  return { low: sorted[best - 1]!, high: sorted[n - best]!, confidence: bestCoverage };
}

/** The smallest sample count whose median CI reaches `confidence` (6 for 95 %). */
export function minSamplesForMedianCI(confidence = 0.95): number {
  for (let n = 1; n < 10_000; n++) if (1 - 2 * binomialHalfCdf(n, 0) >= confidence) return n;
  return Number.POSITIVE_INFINITY;
}

/** The record form of one side's samples (ms): raw samples kept, median with its 95 % CI, mean. */
export function summarize(samplesMs: readonly number[]): SampleStats {
  const ci = medianConfidenceInterval(samplesMs);
  return {
    samples: [...samplesMs],
    medianMs: median(samplesMs),
    meanMs: mean(samplesMs),
    ciLowMs: ci.low,
    ciHighMs: ci.high,
  };
}

/**
 * The Wilson score interval of a binomial proportion (k successes in n trials): the set of
 * p whose score test z = (k/n − p)/√(p(1−p)/n) is within ±z. Unlike the Wald interval it keeps
 * its coverage near 0 (0 of 40 A/A trials still gives an upper bound, 8.8 %) and never leaves [0, 1].
 */
export function wilsonInterval(k: number, n: number, confidence = 0.95): { low: number; high: number } {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(k) || k < 0 || k > n) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `A proportion needs 0 ≤ k ≤ n with n ≥ 1, got ${k} of ${n}.`);
  }
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = k / n;
  const z2n = (z * z) / n;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z / (1 + z2n)) * Math.sqrt((p * (1 - p)) / n + z2n / (4 * n));
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** Φ⁻¹(q) by bisection on normalCdf (accurate to ~1e-12; called a handful of times). */
export function normalQuantile(q: number): number {
  let low = -40;
  let high = 40;
  for (let i = 0; i < 100; i++) {
    const mid = (low + high) / 2;
    if (normalCdf(mid) < q) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}
