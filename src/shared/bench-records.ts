/**
 * What a benchmark run writes: reports/bench/latest.json (one BenchRun) and one line per
 * run appended to reports/bench/history.jsonl. The HTML report draws its tables and
 * charts from these; `macvm bench --compare` reads them back.
 */
export interface SampleStats {
  /** Raw samples in milliseconds, kept so later runs can test against them. */
  samples: number[];
  medianMs: number;
  meanMs: number;
  /** 95 % confidence interval of the median, in ms. */
  ciLowMs: number;
  ciHighMs: number;
  /**
   * The warm-up rounds' samples, in order, discarded before `samples` (same clock). Kept so
   * a reader can see what was thrown away; never used in statistics.
   */
  warmup?: number[];
  /** The other clock's samples (ms), measured rounds and warm-up as above: wall when the ratio uses CPU time... */
  wall?: { samples: number[]; warmup: number[]; medianMs: number };
  /** ...and CPU time when it uses wall time (functions: process CPU per call), where measured. */
  cpu?: { samples: number[]; warmup: number[]; medianMs: number };
}

/**
 * Which clock a workload's samples (and so its ratio) are on:
 * - 'wall': wall time (a function workload: its median call);
 * - 'cpu': CPU time as each side counts it — a TCG guest's includes the time the host took
 *   its vCPU away, which it cannot see;
 * - 'host-cpu': time on a host CPU — the host's own CPU time, and the guest's CPU time with
 *   the steal the host counted for its vCPU taken out (src/shared/cpu-clock.ts); the raw
 *   CPU and wall times are recorded beside.
 */
export type TimeBasis = 'cpu' | 'wall' | 'host-cpu';

/** How a workload's sampling went: why warm-up and measuring ended. */
export interface SamplingSummary {
  /** Measured rounds per side. */
  rounds: number;
  warmupRounds: number;
  /** 'fixed' (warmup: N), 'trend' (the samples stopped trending), 'cap' (still trending at the cap). */
  warmupEndedBy: 'fixed' | 'trend' | 'cap';
  /** 'rounds' (rounds: N), 'precision' (the CI got narrow enough), 'maxTime' (the time budget ran out). */
  endedBy: 'rounds' | 'precision' | 'maxTime';
  /** Relative half-width of the ratio's 95 % CI at the end, e.g. 0.018 = ±1.8 %. */
  halfWidth: number;
  /** Wall time of the workload, warm-up included, ms. */
  elapsedMs: number;
  /** Measured blocks: execs per side, each of one or more rounds (see roundsPerExec). */
  blocks?: number;
  /**
   * The block of each measured round (same order as the samples): rounds with one id ran in
   * one exec per side, and the CI and a comparison keep them in one batch.
   */
  blockIds?: number[];
  /** The most rounds one exec ran (1: no batching). */
  roundsPerExec?: number;
  /**
   * Of the time the guest's vCPU was busy during the workload, the share it waited for a host
   * CPU (steal: 0.25 = a quarter), where the provider has a cpuClock.
   */
  guestSteal?: number;
}

export interface BaselineComparison {
  /** Which run it was compared with (git ref, file or run id). */
  against: string;
  /** Relative change of the guest/host ratio (or guest median) vs the baseline, e.g. 0.031 = +3.1 %. */
  change: number;
  pValue: number;
  /** 'slower' | 'faster' when significant at α = 0.05, '~' when not; 'too-few-samples' when it cannot tell. */
  verdict: 'slower' | 'faster' | '~' | 'too-few-samples';
}

export interface WorkloadResult {
  name: string;
  kind: 'command' | 'function';
  host: SampleStats;
  guest: SampleStats;
  /** guest median / host median, with a 95 % CI. */
  ratio: { median: number; ciLow: number; ciHigh: number };
  /** The clock `samples` and `ratio` use (absent in older records: wall). */
  basis?: TimeBasis;
  sampling?: SamplingSummary;
  baseline?: BaselineComparison;
}

export interface BenchEnvironment {
  hostModel: string;
  hostOs: string;
  provider: string;
  image: string;
  guestOs?: string;
  cpus: number;
  memoryMiB: number;
}

export interface BenchRun {
  schema: 1;
  runId: string;
  /** ISO time. */
  at: string;
  suite: string;
  gitRef?: string;
  environment: BenchEnvironment;
  workloads: WorkloadResult[];
  /** How the samples were taken (optional: older records lack it). */
  method?: BenchMethod;
}

/** How a run measured, so a comparison can tell like from unlike. */
export interface BenchMethod {
  /** Measured rounds per side, or 'auto' (until `precision` or `maxTimeMs`); host and guest rounds alternate. */
  rounds: number | 'auto';
  /** Rounds per side run first and discarded, or 'auto' (until the samples stop trending). */
  warmup: number | 'auto';
  /** Target relative half-width of the ratio's 95 % CI (auto rounds). */
  precision?: number;
  /** Time budget per workload, ms (auto rounds). */
  maxTimeMs?: number;
  /** Whether both sides could measure a command's CPU time (/proc/<pid>/schedstat and stat). */
  commandCpu?: boolean;
  /** Whether the guest's vCPU time was read from the host (a cpuClock), so steal could be taken out. */
  guestCpuClock?: boolean;
  /** How commands were timed, the same way on both sides: 'perl' | 'date-ns' | 'node'. */
  commandTimer?: string;
  /** Where function workloads ran in the guest: 'guest-node' (its own node of the same version) or 'uploaded-node'. */
  guestNode?: string;
}
