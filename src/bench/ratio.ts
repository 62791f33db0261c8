import { MacvmError } from '../errors.js';
import { seededRandom } from './prng.js';
import { medianOfSorted } from './stats.js';

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
  /**
   * Which block each round belongs to (one id per round, host and guest alike): rounds that
   * ran in the same exec on both sides share a process, a moment and its load, so they are
   * resampled together. Default: every round its own block.
   */
  blocks?: readonly number[];
}

/** The default seed: any fixed number will do; this one spells "bench" loosely. */
export const DEFAULT_BOOTSTRAP_SEED = 0xbe7c4;

/**
 * The guest/host ratio of medians with a percentile-bootstrap 95 % CI.
 *
 * Why a bootstrap: the ratio of two medians has no closed-form, distribution-free interval
 * (Fieller's method assumes normal means). Resampling, taking the ratio of the resampled
 * medians, and reading the 2.5 % and 97.5 % quantiles of those ratios makes no assumption
 * about the shape of either side. The PRNG is seeded, so a stored run reproduces exactly.
 *
 * What is resampled: when both sides have one sample per round (the bench's interleaved
 * rounds), whole BLOCKS of rounds, host and guest together — a paired block bootstrap. Round
 * i of the host and of the guest ran back to back, and the rounds of one block (several
 * rounds per exec, see batching.ts) ran in one process at one moment: what they share (a
 * drift of the machine, a process's code layout) is kept together, so the interval neither
 * counts correlated rounds as independent evidence (too narrow) nor ignores a drift both
 * sides saw (too wide). With unequal sample counts each side is resampled on its own.
 * With few samples or blocks the interval is rough (resampled medians can only take a
 * handful of values) — the table warns below 6 rounds.
 */
export function ratioOfMedians(host: readonly number[], guest: readonly number[], options: RatioOptions = {}): RatioEstimate {
  if (host.length === 0 || guest.length === 0) {
    throw new MacvmError('MACVM_BENCH_INVALID', `A guest/host ratio needs samples on both sides (host ${host.length}, guest ${guest.length}).`);
  }
  const hostSide = sortedSide(host);
  const guestSide = sortedSide(guest);
  const hostMedian = medianOfSorted(hostSide.sorted);
  const guestMedian = medianOfSorted(guestSide.sorted);
  if (!(hostMedian > 0)) {
    throw new MacvmError('MACVM_BENCH_INVALID', `The host median is ${hostMedian} ms, so a guest/host ratio is undefined.`, {
      hint: 'The workload finished faster than the clock can measure on the host; make it do more work per round.',
    });
  }
  if (options.blocks && options.blocks.length !== host.length) {
    throw new MacvmError('MACVM_BENCH_INVALID', `Block ids must be one per round (${host.length} rounds, ${options.blocks.length} ids).`);
  }
  const resamples = options.resamples ?? 2000;
  const confidence = options.confidence ?? 0.95;
  const random = seededRandom(options.seed ?? DEFAULT_BOOTSTRAP_SEED);
  const ratios = new Float64Array(resamples);
  const hostCounts = new Uint32Array(host.length);
  const guestCounts = new Uint32Array(guest.length);
  const blocks = host.length === guest.length ? groupRounds(options.blocks ?? host.map((_, i) => i)) : undefined;
  for (let r = 0; r < resamples; r++) {
    let h: number;
    let g: number;
    if (blocks) {
      hostCounts.fill(0);
      guestCounts.fill(0);
      let drawn = 0;
      // As many rounds as there are, drawn a block at a time (blocks may differ in size).
      while (drawn < host.length) {
        for (const round of blocks[Math.floor(random() * blocks.length)]!) {
          hostCounts[hostSide.rank[round]!]!++;
          guestCounts[guestSide.rank[round]!]!++;
          drawn++;
        }
      }
      h = medianOfCounts(hostSide.sorted, hostCounts, drawn);
      g = medianOfCounts(guestSide.sorted, guestCounts, drawn);
    } else {
      h = resampledMedian(hostSide.sorted, random, hostCounts);
      g = resampledMedian(guestSide.sorted, random, guestCounts);
    }
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

/** One side's samples sorted, and where each round's sample landed (its rank). */
function sortedSide(samples: readonly number[]): { sorted: number[]; rank: Uint32Array } {
  const order = samples.map((_, i) => i).sort((a, b) => samples[a]! - samples[b]!);
  const rank = new Uint32Array(samples.length);
  order.forEach((round, position) => (rank[round] = position));
  return { sorted: order.map((i) => samples[i]!), rank };
}

/** Round indices grouped by block id, blocks in order of first appearance. */
function groupRounds(blockIds: readonly number[]): number[][] {
  const groups = new Map<number, number[]>();
  blockIds.forEach((id, round) => {
    const group = groups.get(id);
    if (group) group.push(round);
    else groups.set(id, [round]);
  });
  return [...groups.values()];
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
  return medianOfCounts(sorted, counts, n);
}

/** The median of a multiset given as a count per position of `sorted`, `total` values in all. */
function medianOfCounts(sorted: readonly number[], counts: Uint32Array, total: number): number {
  // 0-based ranks of the middle: (n−1)/2 for odd n; n/2 − 1 and n/2 for even n.
  const lowRank = (total - 1) >> 1;
  const highRank = total >> 1;
  let seen = 0;
  let low = Number.NaN;
  for (let index = 0; index < sorted.length; index++) {
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
