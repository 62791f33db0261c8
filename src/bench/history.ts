import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { MacvmError, messageOf } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { compareWithBaseline, type CompareMetric } from './compare.js';
import { resolveGitRef } from './environment.js';
import type { BenchRun } from '../shared/bench-records.js';

/** reports/bench/: latest.json (the last run, whole) and history.jsonl (every run, one per line). */
/** Where a run lands: latest.json under the reports dir; the history there too unless `historyFile` (the config's `bench.history`) puts it elsewhere. */
export function benchPaths(reportsDir: string, historyFile?: string): { dir: string; latest: string; history: string } {
  const dir = join(resolve(reportsDir), 'bench');
  return { dir, latest: join(dir, 'latest.json'), history: historyFile ? resolve(historyFile) : join(dir, 'history.jsonl') };
}

/**
 * Appends the run to history.jsonl and replaces latest.json. One appendFile of one line
 * (with its newline) per run: concurrent suites each add whole lines, and a reader skips a
 * torn last line rather than losing the rest. latest.json is written atomically.
 */
export async function recordRun(run: BenchRun, reportsDir: string, historyFile?: string): Promise<void> {
  const paths = benchPaths(reportsDir, historyFile);
  await mkdir(paths.dir, { recursive: true });
  await mkdir(dirname(paths.history), { recursive: true });
  await appendFile(paths.history, `${JSON.stringify(run)}\n`);
  await writeFileAtomic(paths.latest, `${JSON.stringify(run, null, 2)}\n`);
}

/**
 * Every readable run in a history file, oldest first. Unreadable lines are skipped, so one torn
 * or hand-edited line does not hide every other run, but `warn` hears how many and why (a file
 * of nothing but such lines would otherwise look like an empty history, and a regression gate
 * would quietly have nothing to compare with). A last line without its newline is an append
 * still under way and is skipped without a word.
 */
export async function readHistory(file: string, warn?: (message: string) => void): Promise<BenchRun[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw new MacvmError('MACVM_BENCH_INVALID', `Cannot read ${file}: ${error.message}`, { cause: error });
  });
  const runs: BenchRun[] = [];
  const skipped: string[] = [];
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    if (!line.trim()) return;
    try {
      runs.push(checkRun(JSON.parse(line), `${file} line ${index + 1}`));
    } catch (error) {
      const unfinished = index === lines.length - 1;
      if (unfinished) return;
      const problem = error instanceof SyntaxError ? 'not JSON' : `not a benchmark run: ${String((error as MacvmError).details?.problem ?? messageOf(error))}`;
      skipped.push(`line ${index + 1}: ${problem}`);
    }
  });
  if (skipped.length > 0 && warn) {
    const shown = skipped.slice(0, 3).join('; ');
    warn(`${file}: skipped ${skipped.length} line(s) that are not benchmark runs (${shown}${skipped.length > 3 ? '; …' : ''}); ${runs.length} run(s) read.`);
  }
  return runs;
}

/** Checks the parts of a BenchRun that comparisons use; names the file and the problem. */
export function checkRun(value: unknown, source: string): BenchRun {
  const fail = (problem: string): never => {
    throw new MacvmError('MACVM_BENCH_INVALID', `${source} is not a benchmark run: ${problem}.`, {
      hint: 'Pass reports/bench/history.jsonl, reports/bench/latest.json or a git ref that has a run in the history.',
      details: { problem },
    });
  };
  if (typeof value !== 'object' || value === null) return fail('not a JSON object');
  const run = value as Partial<BenchRun>;
  if (typeof run.suite !== 'string') fail('"suite" is missing');
  if (!Array.isArray(run.workloads)) fail('"workloads" is missing');
  run.workloads!.forEach((w, i) => {
    if (typeof w?.name !== 'string') fail(`workloads[${i}].name is missing`);
    for (const side of ['host', 'guest'] as const) {
      const samples = w[side]?.samples;
      if (!Array.isArray(samples) || samples.some((s) => typeof s !== 'number' || !Number.isFinite(s))) {
        fail(`workloads[${i}].${side}.samples is not a list of numbers`);
      }
    }
    // What the table prints: a run without it would fail later, far from the file at fault.
    // (An interval's open end is Infinity, which JSON writes as null.)
    const ratio = w.ratio as { median?: unknown; ciLow?: unknown; ciHigh?: unknown } | undefined;
    if (!isFiniteNumber(ratio?.median)) fail(`workloads[${i}].ratio.median is missing`);
    for (const key of ['ciLow', 'ciHigh'] as const) {
      if (!isFiniteNumber(ratio![key]) && ratio![key] !== null) fail(`workloads[${i}].ratio.${key} is missing`);
    }
  });
  return run as BenchRun;
}

export interface Baseline {
  run: BenchRun;
  /** How it is named in tables: "abc1234", "history.jsonl (2026-11-20T...)", a file name. */
  against: string;
}

/**
 * Finds the run to compare with, from what a user types after --compare:
 * - a path to a history file (.jsonl): its newest run of the same suite;
 * - a path to one run (latest.json, or a copy kept as a CI artifact);
 * - a git ref (a tag, a branch, HEAD~3, a sha): the newest run in `historyFile` of the same
 *   suite made at that commit.
 * The current run (by runId) is never its own baseline.
 */
export async function resolveBaseline(
  spec: string,
  options: { suite: string; historyFile: string; excludeRunId?: string; cwd?: string; warn?: (message: string) => void },
): Promise<Baseline> {
  const path = resolve(options.cwd ?? process.cwd(), spec);
  const isFile = await stat(path).then((s) => s.isFile(), () => false);
  const sameSuite = (r: BenchRun) => r.suite === options.suite && r.runId !== options.excludeRunId;
  if (isFile) {
    if (path.endsWith('.jsonl')) {
      const run = (await readHistory(path, options.warn)).filter(sameSuite).at(-1);
      if (!run) throw new MacvmError('MACVM_BENCH_INVALID', `${spec} holds no earlier run of the benchmark "${options.suite}".`);
      return { run, against: `${spec} (${run.gitRef ?? run.at})` };
    }
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch (error) {
      throw new MacvmError('MACVM_BENCH_INVALID', `${spec} is not valid JSON: ${messageOf(error)}`, { cause: error });
    }
    return { run: checkRun(json, spec), against: spec };
  }
  const commit = await resolveGitRef(spec, options.cwd);
  if (!commit) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `--compare ${spec}: no such file, and not a git ref here.`, {
      hint: 'Pass a history.jsonl or BenchRun JSON file, or a commit/tag/branch that has a run in reports/bench/history.jsonl.',
    });
  }
  const run = (await readHistory(options.historyFile, options.warn)).filter((r) => sameSuite(r) && !!r.gitRef && commit.startsWith(r.gitRef)).at(-1);
  if (!run) {
    throw new MacvmError('MACVM_BENCH_INVALID', `No run of "${options.suite}" at ${spec} (${commit.slice(0, 12)}) in ${options.historyFile}.`, {
      hint: `Run the benchmark with ${spec} checked out first, or compare against a file.`,
    });
  }
  return { run, against: `${spec === run.gitRef ? spec : `${spec} (${run.gitRef})`}` };
}

/** The run with each workload compared against the baseline's workload of the same name. */
export function withBaseline(run: BenchRun, baseline: Baseline, metric: CompareMetric = 'ratio'): BenchRun {
  return {
    ...run,
    workloads: run.workloads.map((workload) => {
      const before = baseline.run.workloads.find((w) => w.name === workload.name);
      return before ? { ...workload, baseline: compareWithBaseline(workload, before, baseline.against, { metric }) } : workload;
    }),
  };
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
