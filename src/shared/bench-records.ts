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
  /** Measured rounds per side; host and guest rounds alternate (host, guest, host, ...). */
  rounds: number;
  /** Rounds per side run first and discarded. */
  warmup: number;
  /** How commands were timed, the same way on both sides: 'perl' | 'date-ns' | 'node'. */
  commandTimer?: string;
  /** Where function workloads ran in the guest: 'guest-node' (its own node of the same version) or 'uploaded-node'. */
  guestNode?: string;
}
