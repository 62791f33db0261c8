import { MacvmError } from '../errors.js';
import { seededRandom } from './prng.js';
import { medianOfSorted, sortedCopy } from './stats.js';

export interface RatioEstimate {
  /** median(guest) / median(host). */
  median: number;
  ciLow: number;
  ciHigh: number;
}

export interface RatioOptions {
  /** Bootstrap resamples (default 2000). */
  resamples?: number;
  confidence?: number;
  /** PRNG seed; fixed by default so the same samples always give the same interval. */
  seed?: number;
}

/** The default seed: any fixed number will do; this one spells "bench" loosely. */
export const DEFAULT_BOOTSTRAP_SEED = 0xbe7c4;

/**
 * The guest/host ratio of medians with a percentile-bootstrap 95 % CI.
 *
 * Why a bootstrap: the ratio of two medians has no closed-form, distribution-free interval
 * (Fieller's method assumes normal means). Resampling each side independently with
 * replacement, taking the ratio of the resampled medians, and reading the 2.5 % and 97.5 %
 * quantiles of those ratios makes no assumption about the shape of either side. The PRNG is
 * seeded, so a stored run reproduces exactly. With few samples the interval is rough
 * (resampled medians can only take a handful of values) — the table warns below 6 samples.
 */
export function ratioOfMedians(host: readonly number[], guest: readonly number[], options: RatioOptions = {}): RatioEstimate {
  if (host.length === 0 || guest.length === 0) {
    throw new MacvmError('MACVM_BENCH_INVALID', `A guest/host ratio needs samples on both sides (host ${host.length}, guest ${guest.length}).`);
  }
  const hostSorted = sortedCopy(host);
  const guestSorted = sortedCopy(guest);
  const hostMedian = medianOfSorted(hostSorted);
  const guestMedian = medianOfSorted(guestSorted);
  if (!(hostMedian > 0)) {
    throw new MacvmError('MACVM_BENCH_INVALID', `The host median is ${hostMedian} ms, so a guest/host ratio is undefined.`, {
      hint: 'The workload finished faster than the clock can measure on the host; make it do more work per round.',
    });
  }
  const resamples = options.resamples ?? 2000;
  const confidence = options.confidence ?? 0.95;
  const random = seededRandom(options.seed ?? DEFAULT_BOOTSTRAP_SEED);
  const ratios = new Float64Array(resamples);
  const hostCounts = new Uint32Array(hostSorted.length);
  const guestCounts = new Uint32Array(guestSorted.length);
  for (let r = 0; r < resamples; r++) {
    const h = resampledMedian(hostSorted, random, hostCounts);
    const g = resampledMedian(guestSorted, random, guestCounts);
    // A resampled host median of 0 (clock too coarse) would give ∞; treat as the largest ratio.
    ratios[r] = h > 0 ? g / h : Number.POSITIVE_INFINITY;
  }
  ratios.sort();
  const tail = (1 - confidence) / 2;
  return {
    median: guestMedian / hostMedian,
    ciLow: quantileOfSorted(ratios, tail),
    ciHigh: quantileOfSorted(ratios, 1 - tail),
  };
}

/**
 * The median of one bootstrap resample of `sorted` (n draws with replacement), in O(n): as the
 * values are sorted, the drawn values' order statistics are those of the drawn INDICES, so a
 * count per index replaces sorting the draw. The draws consume `random` exactly as drawing and
 * sorting the values would, so the interval is the same as with a sort, only faster (the
 * adaptive sampler computes it after every round).
 */
function resampledMedian(sorted: readonly number[], random: () => number, counts: Uint32Array): number {
  const n = sorted.length;
  counts.fill(0);
  for (let i = 0; i < n; i++) counts[Math.floor(random() * n)]!++;
  // 0-based ranks of the middle: (n−1)/2 for odd n; n/2 − 1 and n/2 for even n.
  const lowRank = (n - 1) >> 1;
  const highRank = n >> 1;
  let seen = 0;
  let low = Number.NaN;
  for (let index = 0; index < n; index++) {
    seen += counts[index]!;
    if (Number.isNaN(low) && seen > lowRank) low = sorted[index]!;
    if (seen > highRank) return (low + sorted[index]!) / 2;
  }
  return low;
}

/** Linear-interpolated quantile (R's type 7) of sorted values. */
export function quantileOfSorted(sorted: ArrayLike<number>, p: number): number {
  const position = (sorted.length - 1) * p;
  const below = Math.floor(position);
  const above = Math.min(sorted.length - 1, below + 1);
  const weight = position - below;
  const a = sorted[below]!;
  const b = sorted[above]!;
  return weight === 0 ? a : a + (b - a) * weight;
}
