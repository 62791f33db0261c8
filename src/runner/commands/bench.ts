import { readFile } from 'node:fs/promises';
import { MacvmError, messageOf } from '../../errors.js';
import { parsePercent } from '../../bench/bench-suite.js';
import { regressions, type CompareMetric } from '../../bench/compare.js';
import { benchPaths, checkRun, readHistory, resolveBaseline, withBaseline, type Baseline } from '../../bench/history.js';
import { formatBenchTable } from '../../bench/table.js';
import { reportLocations } from '../report-locations.js';
import type { Command } from './command.js';
import { parseCommandArgs, writeJson } from './args.js';

export const benchCommand: Command = {
  path: ['bench'],
  summary: 'Run guest-vs-host benchmarks, compare with a baseline, gate CI on regressions',
  help: `Usage: macvm bench [bench files...] [--compare <ref|file>] [--fail-on-regression <pct>] [--json]

With files: runs the benchMacVM() suites in them (through vitest, like \`macvm test\`);
each run is appended to <reports>/bench/history.jsonl and written to latest.json.
Without files: compares the last run (<reports>/bench/latest.json) with a baseline.

Each workload is compared on its guest/host ratio: Welch's t test on the two runs' batch
ratios (three contiguous batches per run, α = 0.05): "+4.2 % slower (p=0.003)", or "~" when
the difference is not significant. Reports and history go where \`macvm test\` puts them
(--reports-dir, $MACVM_REPORTS_DIR, macvm.config.ts's reports.dir and bench.history).

Options:
  --compare <ref|file>       baseline: a history.jsonl (its newest run of the same suite),
                             a BenchRun JSON file, or a git ref with a run in the history
                             (default: the previous run of the same suite)
  --fail-on-regression <pct> exit 1 when a workload is significantly slower by more than pct %
                             (default: the config's bench.failOnRegression, else never)
  --metric ratio|guest       compare guest/host ratios (default) or raw guest times
  --json                     print the run (with its comparisons) as JSON
  --reports-dir <dir>        default: $MACVM_REPORTS_DIR, else the config's reports.dir, else ./reports

Examples:
  macvm bench specs/guest-vs-host.spec.ts --fail-on-regression 5
  macvm bench --compare v1.2.0 --json`,
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('bench', argv, {
      compare: { type: 'string' },
      'fail-on-regression': { type: 'string' },
      metric: { type: 'string' },
      json: { type: 'boolean' },
      'reports-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help) {
      stdout.write(`${benchCommand.help}\n`);
      return 0;
    }
    if (values['fail-on-regression'] === '') throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm bench: --fail-on-regression needs a percentage (e.g. 5).');
    const gate = parsePercent(values['fail-on-regression']);
    const metric = parseMetric(values.metric);
    const { reportsDir, benchHistory, failOnRegression: configGate } = await reportLocations(values['reports-dir']);
    const failOnRegression = gate ?? configGate;
    const paths = benchPaths(reportsDir, benchHistory);

    if (positionals.length > 0) {
      // benchMacVM reads these, so the suites compare and gate by themselves (the config's
      // reports.dir, bench.history and bench.failOnRegression reach them through the run).
      if (values.compare) process.env.MACVM_BENCH_COMPARE = values.compare;
      if (gate !== undefined) process.env.MACVM_BENCH_FAIL_ON_REGRESSION = String(gate);
      if (values['reports-dir'] !== undefined) process.env.MACVM_REPORTS_DIR = values['reports-dir'];
      process.env.MACVM_BENCH_METRIC = metric;
      const { runTests } = await import('../run-tests.js');
      const code = await runTests(['run', ...positionals]);
      if (values.json) writeJson(stdout, JSON.parse(await readFile(paths.latest, 'utf8').catch(() => 'null')));
      return code;
    }

    const latest = await readLatest(paths.latest);
    const warn = (message: string) => stderr.write(`macvm bench: ${message}\n`);
    let baseline: Baseline | undefined;
    if (values.compare) {
      baseline = await resolveBaseline(values.compare, { suite: latest.suite, historyFile: paths.history, excludeRunId: latest.runId, warn });
    } else {
      const previous = (await readHistory(paths.history, warn)).filter((r) => r.suite === latest.suite && r.runId !== latest.runId).at(-1);
      if (previous) baseline = { run: previous, against: `previous run (${previous.gitRef ?? previous.at})` };
    }
    const run = baseline ? withBaseline(latest, baseline, metric) : latest;
    if (values.json) writeJson(stdout, run);
    else stdout.write(formatBenchTable(run));
    if (!baseline) stderr.write(`macvm bench: no earlier run of "${latest.suite}" to compare with.\n`);
    if (failOnRegression !== undefined && baseline) {
      const regressed = regressions(run.workloads, failOnRegression);
      if (regressed.length > 0) {
        throw new MacvmError(
          'MACVM_BENCH_REGRESSION',
          `${regressed.length} workload(s) of "${run.suite}" are slower than ${baseline.against} by more than ${failOnRegression} %: ${regressed
            .map((w) => `${w.name} +${(w.baseline!.change * 100).toFixed(1)} %`)
            .join(', ')}.`,
          { hint: 'Re-run the benchmark to rule out noise, or raise --fail-on-regression if the change is expected.' },
        );
      }
    }
    return 0;
  },
};

function parseMetric(value: string | undefined): CompareMetric {
  if (value === undefined || value === 'ratio' || value === 'guest') return value ?? 'ratio';
  throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm bench: --metric must be "ratio" or "guest", got "${value}".`);
}

async function readLatest(file: string) {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new MacvmError('MACVM_BENCH_INVALID', missing ? `No benchmark run to compare: ${file} does not exist.` : `No benchmark run to compare: cannot read ${file} (${messageOf(error)}).`, {
      hint: 'Run a benchmark first (`macvm bench specs/guest-vs-host.spec.ts`), or pass --reports-dir where one ran.',
      cause: error,
    });
  }
  try {
    return checkRun(JSON.parse(text), file);
  } catch (error) {
    if (error instanceof MacvmError) {
      throw new MacvmError(error.code, error.message, { hint: 'latest.json is written by each benchmark run: run one again to replace it.', cause: error });
    }
    throw new MacvmError('MACVM_BENCH_INVALID', `${file} is not valid JSON: ${messageOf(error)}`, { cause: error });
  }
}
