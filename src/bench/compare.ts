import type { BaselineComparison, TimeBasis, WorkloadResult } from '../shared/bench-records.js';
import { DEFAULT_ALPHA, mannWhitneyU } from './mann-whitney.js';
import { median } from './stats.js';

/**
 * What a workload is compared on between runs.
 * - 'ratio' (default): the per-round guest/host ratios. Host and guest rounds are interleaved
 *   (round i of each side ran back to back), so guest[i]/host[i] cancels what drifted on the
 *   machine between runs — a different day, a busier CI box — and isolates the VM's overhead.
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

type Compared = Pick<WorkloadResult, 'host' | 'guest' | 'basis'>;

function metricSamples(workload: Pick<WorkloadResult, 'host' | 'guest'>, metric: CompareMetric): number[] {
  return metric === 'ratio' ? perRoundRatios(workload) : [...workload.guest.samples];
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
 * (see likeForLike: a CPU-time run against an older wall-time record compares wall times): Mann-Whitney U on the
 * chosen metric's samples, α = 0.05. `change` is the relative change of the metric's median
 * (+0.031 = 3.1 % slower). The verdict is 'slower'/'faster' only when significant, '~' when
 * not, and 'too-few-samples' when the sample counts could not show a difference even if
 * every sample of one run were above every sample of the other.
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
  const now = metricSamples(currentSides, metric);
  const before = metricSamples(baselineSides, metric);
  if (now.length === 0 || before.length === 0) {
    // No NaN in records: JSON would turn it into null. A p of 1 says "no evidence".
    return { against, change: 0, pValue: 1, verdict: 'too-few-samples' };
  }
  const change = median(now) / median(before) - 1;
  const test = mannWhitneyU(now, before, alpha);
  let verdict: BaselineComparison['verdict'];
  if (test.tooFewSamples) verdict = 'too-few-samples';
  else if (test.pValue < alpha) verdict = change > 0 ? 'slower' : change < 0 ? 'faster' : '~';
  else verdict = '~';
  return { against, change, pValue: test.pValue, verdict };
}

/** Workloads significantly slower than the baseline by more than `percent` %. */
export function regressions(workloads: readonly WorkloadResult[], percent: number): WorkloadResult[] {
  return workloads.filter((w) => w.baseline?.verdict === 'slower' && w.baseline.change * 100 > percent);
}
