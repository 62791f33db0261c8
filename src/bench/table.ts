import type { BenchRun, WorkloadResult } from '../shared/bench-records.js';
import { neededForPrecision } from './batch-means.js';
import { minSamplesForMedianCI } from './stats.js';

/** A duration in the unit that reads best: µs below 1 ms, s from 1000 ms, ~3 significant digits. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const [value, unit] = Math.abs(ms) < 1 ? [ms * 1000, 'µs'] : Math.abs(ms) < 1000 ? [ms, 'ms'] : [ms / 1000, 's'];
  return `${significant(value)} ${unit}`;
}

function significant(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/**
 * "1.43× ±0.05" when the 95 % CI is about symmetric; otherwise the interval itself,
 * "2.46× (1.10–7.35)", since a ratio's interval is often skewed (it cannot go below 0) and
 * one ± figure would misstate it.
 */
export function formatRatio(ratio: WorkloadResult['ratio']): string {
  // A run read back from JSON has null where the interval was open (JSON has no Infinity).
  const ciLow = ratio.ciLow ?? 0;
  const ciHigh = ratio.ciHigh ?? Number.POSITIVE_INFINITY;
  const below = ratio.median - ciLow;
  const above = ciHigh - ratio.median;
  const plusMinus = Math.max(below, above);
  if (!Number.isFinite(plusMinus)) return `${ratio.median.toFixed(2)}× (${ciLow.toFixed(2)}–∞)`;
  const symmetric = plusMinus === 0 || Math.min(below, above) / plusMinus >= 0.6;
  return symmetric ? `${ratio.median.toFixed(2)}× ±${plusMinus.toFixed(2)}` : `${ratio.median.toFixed(2)}× (${ciLow.toFixed(2)}–${ciHigh.toFixed(2)})`;
}

export function formatVerdict(workload: WorkloadResult): string {
  const b = workload.baseline;
  if (!b) return '–';
  const p = `p=${b.pValue < 0.001 ? b.pValue.toExponential(0) : b.pValue.toFixed(3)}`;
  const change = `${b.change >= 0 ? '+' : '−'}${Math.abs(b.change * 100).toFixed(1)} %`;
  switch (b.verdict) {
    case 'slower':
      return `${change} slower (${p})`;
    case 'faster':
      return `${change} faster (${p})`;
    case '~':
      return `~ (${p})`;
    default:
      return '? too few samples';
  }
}

/**
 * The terminal table: workload | host median | guest median | guest/host ± CI | vs baseline,
 * numbers right-aligned, followed by warning lines where the sample counts are too small
 * for the 95 % intervals or the baseline test to mean anything.
 */
export function formatBenchTable(run: BenchRun): string {
  const header = ['workload', 'host median', 'guest median', 'guest/host', 'vs baseline'];
  const rows = run.workloads.map((w) => [w.name, formatDuration(w.host.medianMs), formatDuration(w.guest.medianMs), formatRatio(w.ratio), formatVerdict(w)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 0 || i === cells.length - 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  const env = run.environment;
  out.push(...run.workloads.flatMap((w) => (w.sampling || w.basis ? [samplingLine(w, run)] : [])));
  out.push(`${run.suite} · ${env.provider} ${env.image}${env.guestOs ? ` (${env.guestOs})` : ''} · ${env.cpus} CPU ${env.memoryMiB} MiB · host ${env.hostModel}${run.gitRef ? ` · ${run.gitRef}` : ''}`);
  out.push(...benchWarnings(run).map((w) => `warning: ${w}`));
  return `${out.join('\n')}\n`;
}

/**
 * How one workload was sampled, e.g. "shell loop: time on a host CPU (guest's 12 % steal taken
 * out) · ±1.8 % after 84 rounds, 41.2 s (precision reached) · warm-up 3 rounds (stopped
 * trending)"; batched rounds add "in 9 execs of up to 5".
 */
export function samplingLine(w: WorkloadResult, run: Pick<BenchRun, 'method'>): string {
  const s = w.sampling;
  const clock = { cpu: 'CPU time', wall: 'wall time', 'host-cpu': 'time on a host CPU' }[w.basis ?? 'wall'];
  const steal = s?.guestSteal !== undefined && w.basis === 'host-cpu' ? ` (guest's ${(s.guestSteal * 100).toFixed(0)} % steal taken out)` : '';
  const parts = [`${w.name}: ${clock}${steal}`];
  if (s) {
    const width = Number.isFinite(s.halfWidth) ? `±${(s.halfWidth * 100).toFixed(1)} %` : '±?';
    const why = { precision: `target ±${((run.method?.precision ?? 0) * 100).toFixed(1)} % reached`, maxTime: 'time budget spent', rounds: 'fixed rounds' }[s.endedBy];
    const batched = s.roundsPerExec !== undefined && s.roundsPerExec > 1 ? ` in ${s.blocks} execs of up to ${s.roundsPerExec}` : '';
    parts.push(`${width} after ${s.rounds} rounds${batched}, ${formatDuration(s.elapsedMs)} (${why})`);
    const warm = { fixed: 'fixed', trend: 'stopped trending', cap: 'still trending at the cap' }[s.warmupEndedBy];
    parts.push(`warm-up ${s.warmupRounds} round${s.warmupRounds === 1 ? '' : 's'} (${warm})`);
  }
  return parts.join(' · ');
}

/** A budget as a person would set it: seconds up to two minutes, then minutes, then hours. */
function formatBudget(ms: number): string {
  if (ms < 120_000) return `${Math.ceil(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.ceil(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function benchWarnings(run: BenchRun): string[] {
  const warnings: string[] = [];
  const needed = minSamplesForMedianCI();
  for (const w of run.workloads) {
    const n = Math.min(w.host.samples.length, w.guest.samples.length);
    if (n > 0 && n < needed) {
      warnings.push(`${w.name}: ${n} round(s) per side; a 95 % CI of the median needs at least ${needed}, so the intervals shown are min–max.`);
    }
    if (w.sampling?.endedBy === 'maxTime' && run.method?.precision !== undefined) {
      const { halfWidth, elapsedMs } = w.sampling;
      // The budget that would reach it at this run's noise, as Criterion's "increase the target time to …".
      const needed = neededForPrecision(elapsedMs, halfWidth, run.method.precision);
      const estimate = needed === undefined ? '' : ` (at this run's noise, to about ${formatBudget(needed)}: the interval narrows as 1/√time)`;
      warnings.push(`${w.name}: the time budget ran out at ±${(halfWidth * 100).toFixed(1)} %, short of the ±${(run.method.precision * 100).toFixed(1)} % asked for; raise maxTime${estimate} or make the workload steadier.`);
    }
    if (w.baseline?.verdict === 'too-few-samples') {
      warnings.push(`${w.name}: too few rounds to tell a change from noise against ${w.baseline.against} (a run needs ≥ 4 rounds, better ≥ 10, for its batches to show how much the machine drifts).`);
    }
  }
  return warnings;
}
