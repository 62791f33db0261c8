import type { BaselineComparison, TimeBasis, WorkloadResult } from '../shared/bench-records.js';
import { batchLogMedians, batchLogRatios, compareBatches } from './batch-means.js';
import { DEFAULT_ALPHA } from './mann-whitney.js';
import { median } from './stats.js';

/**
 * What a workload is compared on between runs.
 * - 'ratio' (default): the guest/host ratio. Host and guest rounds are interleaved (round i
 *   of each side ran back to back), so the ratio cancels what drifted on the machine between
 *   runs — a different day, a busier CI box — and isolates the VM's overhead.
 * - 'guest': the guest samples themselves, for when the host side is known to be stable.
 */
export type CompareMetric = 'ratio' | 'guest';

export function perRoundRatios(workload: Pick<WorkloadResult, 'host' | 'guest'>): number[] {
  const rounds = Math.min(workload.host.samples.length, workload.guest.samples.length);
  const ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const h = workload.host.samples[i]!;
    if (h > 0) ratios.push(workload.guest.samples[i]! / h);
  }
  return ratios;
}

type Compared = Pick<WorkloadResult, 'host' | 'guest' | 'basis'> & { sampling?: Pick<NonNullable<WorkloadResult['sampling']>, 'blockIds'> };
type Sides = Pick<WorkloadResult, 'host' | 'guest'>;

/** The run's batch figures (logs, batch-means.ts): batch ratios of medians, or batch guest medians. */
function batchFigures(workload: Sides, metric: CompareMetric, blockIds: readonly number[] | undefined): number[] {
  const rounds = Math.min(workload.host.samples.length, workload.guest.samples.length);
  const blocks = blockIds?.length === rounds ? blockIds : undefined;
  const host = workload.host.samples.slice(0, rounds);
  const guest = workload.guest.samples.slice(0, rounds);
  if (rounds === 0 || (metric === 'ratio' && host.some((h) => !(h > 0)))) return [];
  return metric === 'ratio' ? batchLogRatios(host, guest, blocks) : batchLogMedians(guest, blocks);
}

/** Rounds a run needs before its verdict means anything (the table's warning says so below it). */
export const MIN_ROUNDS = 4;

function rounds(workload: Sides): number {
  return Math.min(workload.host.samples.length, workload.guest.samples.length);
}

/** The figure compared, over the whole run: guest median / host median, or the guest median. */
function wholeRunFigure(workload: Sides, metric: CompareMetric): number {
  return metric === 'ratio' ? median(workload.guest.samples) / median(workload.host.samples) : median(workload.guest.samples);
}

/** One run's samples on `clock`, from its basis or from the other clock recorded beside it. */
function onClock(workload: Compared, clock: TimeBasis): Pick<WorkloadResult, 'host' | 'guest'> | undefined {
  if ((workload.basis ?? 'wall') === clock) return workload;
  // Time on a host CPU exists only as a basis; the raw clocks are what is recorded beside.
  if (clock === 'host-cpu') return undefined;
  const host = workload.host[clock]?.samples;
  const guest = workload.guest[clock]?.samples;
  return host && guest ? { host: { ...workload.host, samples: host }, guest: { ...workload.guest, samples: guest } } : undefined;
}

/**
 * Both runs on the same clock: the current run's basis when the baseline has it too, else
 * CPU time as each side counted it (a run on host CPU time against one from before the
 * guest's steal was taken out), else wall time (records before CPU time was measured hold
 * wall time only), else each run's own.
 */
function likeForLike(current: Compared, baseline: Compared): [Pick<WorkloadResult, 'host' | 'guest'>, Pick<WorkloadResult, 'host' | 'guest'>] {
  for (const clock of [current.basis ?? 'wall', 'cpu', 'wall'] as const) {
    const now = onClock(current, clock);
    const before = onClock(baseline, clock);
    if (now && before) return [now, before];
  }
  return [current, baseline];
}

/**
 * Compares one workload with the same workload of a baseline run, both on the same clock
 * (see likeForLike: a CPU-time run against an older wall-time record compares wall times).
 * `change` is the relative change of the whole-run figure (+0.031 = 3.1 % slower). Whether it
 * is more than noise is Welch's t test on the two runs' batch figures (three contiguous
 * batches per run, batch-means.ts), α = 0.05: a drift of the machine within a run shows as
 * spread between its batches, so it is not taken for a change between runs — which a test on
 * the single rounds did (45 % false alarms in 40 real A/A pairs against the qemu guest). The
 * verdict is 'slower'/'faster' only when significant, '~' when not, and 'too-few-samples'
 * when either run has fewer than MIN_ROUNDS rounds: batches of one round each, too few to
 * say anything about a drift.
 */
export function compareWithBaseline(
  current: Compared,
  baseline: Compared,
  against: string,
  options: { metric?: CompareMetric; alpha?: number } = {},
): BaselineComparison {
  const metric = options.metric ?? 'ratio';
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const [currentSides, baselineSides] = likeForLike(current, baseline);
  const now = batchFigures(currentSides, metric, current.sampling?.blockIds);
  const before = batchFigures(baselineSides, metric, baseline.sampling?.blockIds);
  const test = rounds(currentSides) >= MIN_ROUNDS && rounds(baselineSides) >= MIN_ROUNDS ? compareBatches(now, before) : undefined;
  if (!test) {
    // No NaN in records: JSON would turn it into null. A p of 1 says "no evidence".
    return { against, change: 0, pValue: 1, verdict: 'too-few-samples' };
  }
  const change = wholeRunFigure(currentSides, metric) / wholeRunFigure(baselineSides, metric) - 1;
  let verdict: BaselineComparison['verdict'];
  if (test.pValue < alpha) verdict = change > 0 ? 'slower' : change < 0 ? 'faster' : '~';
  else verdict = '~';
  return { against, change, pValue: test.pValue, verdict };
}

/** Workloads significantly slower than the baseline by more than `percent` %. */
export function regressions(workloads: readonly WorkloadResult[], percent: number): WorkloadResult[] {
  return workloads.filter((w) => w.baseline?.verdict === 'slower' && w.baseline.change * 100 > percent);
}
