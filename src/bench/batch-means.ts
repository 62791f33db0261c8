import { MacvmError } from '../errors.js';
import { median } from './stats.js';
import { studentTwoSidedP, welchTest } from './student-t.js';

/**
 * The uncertainty of a benchmark's figure from BATCH MEANS: the measured rounds, in the order
 * they ran, are cut into BATCHES contiguous groups, the figure is computed in each group, and
 * the spread of those group figures says how far the whole-run figure can be trusted.
 *
 * Why not the rounds themselves: on a shared host the rounds are not independent. The
 * machine's speed drifts over seconds and minutes (other tenants, other CPU's work, the TCG
 * guest's sensitivity to cache contention), so neighbouring rounds agree more than distant
 * ones: against the qemu guest the per-round log ratios had a lag-1 autocorrelation of 0.4,
 * and 40 real A/A pairs of 60–120-round runs gave a per-round Mann-Whitney test 18 false
 * alarms (45 %) where 5 % were expected. A per-round bootstrap has the same flaw: it takes
 * n correlated rounds for n independent ones and reports an interval far too narrow.
 * Contiguous batches each span a part of the run, so the drift shows up BETWEEN them and is
 * counted as uncertainty — provided the batches are long enough to be nearly independent.
 *
 * How many: judged on 200 real A/A pairs against the qemu guest (`npm run bench
 * aa-false-alarms -- --guest qemu`, five sets of 40, loads 2–7), where Welch's test on the two
 * runs' batch ratios should fire 5 % of the time: two batches 7/200, three 8/200 (4 %), four
 * 15/200, five 17/200 (8.5 %, its 95 % Wilson interval 5.4–13.2 % entirely above 5 %), ten
 * 21/200. The guest's drift reaches across a fifth of a run, so five batches were not
 * independent and their gate cried wolf; three are. The price is a wider interval (t(2) =
 * 4.30 against t(4) = 2.78 — about 1.5× at equal spread): an honest interval over a narrow
 * one that a regression gate cannot trust.
 *
 * Rounds that ran in one exec (several per exec, batching.ts) stay in one batch: a batch
 * boundary falls between execs, never inside one.
 */
export const BATCHES = 3;

/**
 * The batches of `n` rounds, as lists of round indices: BATCHES contiguous groups of about
 * equal size (fewer when there are fewer rounds, one round each), cut only where the block
 * id changes.
 */
export function timeBatches(n: number, blocks?: readonly number[]): number[][] {
  if (blocks && blocks.length !== n) throw new MacvmError('MACVM_BENCH_INVALID', `Block ids must be one per round (${n} rounds, ${blocks.length} ids).`);
  const count = Math.min(BATCHES, n);
  const batches: number[][] = Array.from({ length: count }, () => []);
  let batch = 0;
  for (let round = 0; round < n; round++) {
    const sameExec = blocks !== undefined && round > 0 && blocks[round] === blocks[round - 1];
    // The batch this round's position calls for; an exec's later rounds stay with its first.
    const due = Math.floor((round * count) / n);
    if (!sameExec) batch = Math.max(batch, due);
    batches[batch]!.push(round);
  }
  return batches.filter((b) => b.length > 0);
}

/** ln(median(guest) / median(host)) of each batch. */
export function batchLogRatios(host: readonly number[], guest: readonly number[], blocks?: readonly number[]): number[] {
  if (host.length !== guest.length) {
    throw new MacvmError('MACVM_BENCH_INVALID', `Batch ratios need one host and one guest sample per round (host ${host.length}, guest ${guest.length}).`);
  }
  return timeBatches(host.length, blocks).map((rounds) => Math.log(median(rounds.map((r) => guest[r]!)) / median(rounds.map((r) => host[r]!))));
}

/** ln(median) of each batch of one series. */
export function batchLogMedians(samples: readonly number[], blocks?: readonly number[]): number[] {
  return timeBatches(samples.length, blocks).map((rounds) => Math.log(median(rounds.map((r) => samples[r]!))));
}

/** The t quantile q (two-sided: P(|T| ≤ q) = confidence) for `df` degrees of freedom, by bisection. */
export function tQuantile(confidence: number, df: number): number {
  let low = 0;
  let high = 1e6;
  for (let i = 0; i < 200; i++) {
    const mid = (low + high) / 2;
    if (1 - studentTwoSidedP(mid, df) < confidence) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/**
 * The half-width, in log units, of a `confidence` interval for a whole-run figure whose
 * batch values (logs) are `values`: t(batches − 1) × sd / √batches. Infinity with fewer than
 * two batches (nothing to tell the spread from).
 */
export function batchLogHalfWidth(values: readonly number[], confidence = 0.95): number {
  const g = values.length;
  if (g < 2) return Number.POSITIVE_INFINITY;
  const mean = values.reduce((a, b) => a + b, 0) / g;
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (g - 1));
  return (tQuantile(confidence, g - 1) * sd) / Math.sqrt(g);
}

/**
 * How much of `spent` (rounds, or time) a run that reached a relative half-width of
 * `halfWidth` would need for `precision`: batch means over a longer run keep their count and
 * grow in length, so their spread, and the interval, shrink as 1/√(rounds or time) — once
 * batches outlast the machine's drift; until then the figure is optimistic. Undefined when no
 * interval was measured.
 */
export function neededForPrecision(spent: number, halfWidth: number, precision: number): number | undefined {
  if (!Number.isFinite(halfWidth) || !(halfWidth > 0) || !(precision > 0) || !(spent > 0)) return undefined;
  return spent * (halfWidth / precision) ** 2;
}

export interface RatioInterval {
  /** median(guest) / median(host) over all the measured rounds. */
  median: number;
  ciLow: number;
  ciHigh: number;
}

/**
 * The guest/host ratio of medians with a 95 % CI from batch means: centred (in log space) on
 * the whole run's ratio, as wide as BATCHES contiguous batches' ratios spread (see above).
 */
export function batchRatioInterval(host: readonly number[], guest: readonly number[], blocks?: readonly number[], confidence = 0.95): RatioInterval {
  if (host.length === 0 || guest.length !== host.length) {
    throw new MacvmError('MACVM_BENCH_INVALID', `A guest/host ratio needs samples on both sides, one per round (host ${host.length}, guest ${guest.length}).`);
  }
  const hostMedian = median(host);
  if (!(hostMedian > 0)) {
    throw new MacvmError('MACVM_BENCH_INVALID', `The host median is ${hostMedian} ms, so a guest/host ratio is undefined.`, {
      hint: 'The workload finished faster than the clock can measure on the host; make it do more work per round.',
    });
  }
  const ratio = median(guest) / hostMedian;
  const half = batchLogHalfWidth(batchLogRatios(host, guest, blocks), confidence);
  return { median: ratio, ciLow: ratio * Math.exp(-half), ciHigh: ratio * Math.exp(half) };
}

/**
 * Two runs' batch values compared: Welch's t test on their batch logs, two-sided. With fewer
 * than two batches on either side there is nothing to test (undefined).
 */
export function compareBatches(current: readonly number[], baseline: readonly number[]): { pValue: number } | undefined {
  if (current.length < 2 || baseline.length < 2) return undefined;
  return { pValue: welchTest(current, baseline).pValue };
}
