import { resolve } from 'node:path';
import { MacvmError } from '../errors.js';
import type { CompareMetric } from './compare.js';
import { regressions } from './compare.js';
import { currentGitRef, hostFacts } from './environment.js';
import { benchPaths, readHistory, recordRun, resolveBaseline, withBaseline, type Baseline } from './history.js';
import type { BenchEnvironment, BenchRun } from '../shared/bench-records.js';
import { assertBenchOptions } from './options.js';
import { runBench } from './run-bench.js';
import type { BenchShell } from './shell.js';
import { formatBenchTable } from './table.js';
import { collectWorkloads, type BenchBuilder } from './workloads.js';

/** The VM-independent part of a benchmark suite's settings. */
export interface BenchSuiteOptions {
  /** 'auto' (default): until the ratio's 95 % CI is within ±`precision` or `maxTime` is spent; or a fixed count. */
  rounds?: number | 'auto';
  /** 'auto' (default): until the samples stop trending; or a fixed count of discarded rounds. */
  warmup?: number | 'auto';
  /** Target relative half-width of the ratio's 95 % CI, a fraction (default 0.02 = ±2 %). */
  precision?: number;
  /** Time budget per workload for auto rounds, ms, warm-up included (default 60 000). */
  maxTime?: number;
  /**
   * What to compare with (as `macvm bench --compare`): a history.jsonl or BenchRun file, or a
   * git ref. Default: $MACVM_BENCH_COMPARE, else the previous run of this suite in the
   * history (when there is one). `false`: no comparison.
   */
  baseline?: string | false;
  /** Fail when a workload is significantly slower than the baseline by more than this %. Default: $MACVM_BENCH_FAIL_ON_REGRESSION. */
  failOnRegression?: number;
  /** Compare guest/host ratios (default) or raw guest times. */
  metric?: CompareMetric;
  /** Default: $MACVM_REPORTS_DIR, else ./reports. */
  reportsDir?: string;
  /** The history file (runs appended, the previous run read back). Default: `<reportsDir>/bench/history.jsonl`; under `macvm test`, the config's `bench.history`. */
  historyFile?: string;
  /** Directory in the guest for per-run temp files (default /tmp). */
  guestDir?: string;
  /** Where this host's node is uploaded when the guest needs it (default $HOME/.cache in the guest). */
  guestNodeDir?: string;
  /** Where the table and progress lines go (default: stderr). */
  log?: (text: string) => void;
}

export interface BenchSuiteResult {
  run: BenchRun;
  table: string;
}

/**
 * One suite against one guest: run the workloads, compare with the baseline, print the
 * table, append to reports/bench/history.jsonl and replace latest.json — and only THEN,
 * when asked, fail on a regression, so the failing run is on record too.
 */
export async function runBenchSuite(
  suite: string,
  guest: BenchShell,
  vm: Pick<BenchEnvironment, 'provider' | 'image' | 'guestOs' | 'cpus' | 'memoryMiB'>,
  define: (b: BenchBuilder) => void,
  options: BenchSuiteOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<BenchSuiteResult> {
  assertBenchOptions(options, `benchmark "${suite}" options`);
  const workloads = collectWorkloads(define);
  const reportsDir = resolve(options.reportsDir ?? env.MACVM_REPORTS_DIR ?? 'reports');
  const paths = benchPaths(reportsDir, options.historyFile);
  const failOnRegression = options.failOnRegression ?? parsePercent(env.MACVM_BENCH_FAIL_ON_REGRESSION);
  const log = options.log ?? ((text: string) => process.stderr.write(text));
  const warn = (message: string) => log(`macvm bench: ${message}\n`);
  const metric = options.metric ?? (env.MACVM_BENCH_METRIC === 'guest' ? 'guest' : 'ratio');

  // Resolve the baseline before the (long) run, so a typo in --compare fails in a second.
  const spec = options.baseline === false ? undefined : (options.baseline ?? env.MACVM_BENCH_COMPARE);
  let baseline: Baseline | undefined = spec ? await resolveBaseline(spec, { suite, historyFile: paths.history, warn }) : undefined;
  if (!baseline && options.baseline !== false) {
    const previous = (await readHistory(paths.history, warn)).filter((r) => r.suite === suite).at(-1);
    if (previous) baseline = { run: previous, against: `previous run (${previous.gitRef ?? previous.at})` };
  }
  if (failOnRegression !== undefined && !baseline) {
    log(`macvm bench: --fail-on-regression ${failOnRegression} has nothing to compare with yet (no earlier run of "${suite}"); this run becomes the baseline.\n`);
  }

  const [host, gitRef] = await Promise.all([hostFacts(), currentGitRef()]);
  const measured = await runBench({
    suite,
    workloads,
    guest,
    rounds: options.rounds,
    warmup: options.warmup,
    precision: options.precision,
    maxTime: options.maxTime,
    guestDir: options.guestDir,
    guestNodeDir: options.guestNodeDir,
    environment: { ...host, ...vm },
    gitRef,
    // Round-by-round lines only for a person watching a terminal; logs get the table.
    onProgress: process.stderr.isTTY && !env.CI ? (line) => log(`  ${suite} › ${line}\n`) : undefined,
  });
  const run = baseline ? withBaseline(measured, baseline, metric) : measured;
  const table = formatBenchTable(run);
  log(`\n${table}`);
  await recordRun(run, reportsDir, paths.history);

  if (failOnRegression !== undefined) {
    const regressed = regressions(run.workloads, failOnRegression);
    if (regressed.length > 0) {
      const list = regressed.map((w) => `${w.name} ${(w.baseline!.change * 100).toFixed(1)} % slower (p=${w.baseline!.pValue.toPrecision(2)})`).join('; ');
      throw new MacvmError('MACVM_BENCH_REGRESSION', `Benchmark "${suite}" regressed by more than ${failOnRegression} % against ${baseline!.against}: ${list}.`, {
        hint: `The run is recorded in ${paths.history}. Re-run to rule out noise; raise --fail-on-regression if this change is expected.`,
        details: { suite, regressed: regressed.map((w) => ({ name: w.name, ...w.baseline })) },
      });
    }
  }
  return { run, table };
}

export function parsePercent(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value.trim().replace(/%$/, ''));
  if (!Number.isFinite(n) || n < 0) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `--fail-on-regression must be a percentage ≥ 0 (e.g. 5 or 5%), got "${value}".`);
  }
  return n;
}
