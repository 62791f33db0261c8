import { readFile } from 'node:fs/promises';
import { MacvmError } from '../errors.js';
import type { BaselineComparison, BenchRun, SampleStats, WorkloadResult } from '../shared/bench-records.js';
import { Validator } from './read-results.js';

export interface BenchInputs {
  /** reports/bench/latest.json, when a benchmark has run. */
  latest?: BenchRun;
  /** reports/bench/history.jsonl, oldest first. */
  history: BenchRun[];
  /** Lines of history.jsonl that could not be read (e.g. a torn last line), with why. */
  skippedHistoryLines: Array<{ line: number; problem: string }>;
}

const VERDICTS: readonly BaselineComparison['verdict'][] = ['slower', 'faster', '~', 'too-few-samples'];

/**
 * Reads the benchmark records. latest.json is one file a run wrote whole, so a bad one is an
 * error naming the JSON path; history.jsonl is appended to over weeks, so one bad line is
 * skipped (and shown in the report) rather than hiding every other run.
 */
export async function readBenchInputs(latestFile: string, historyFile: string): Promise<BenchInputs> {
  const result: BenchInputs = { history: [], skippedHistoryLines: [] };
  const latestText = await readOptional(latestFile);
  if (latestText !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(latestText);
    } catch (error) {
      throw new MacvmError('MACVM_REPORT_FAILED', `${latestFile} is not valid JSON: ${(error as Error).message}`, {
        hint: 'Re-run `macvm bench` to rewrite it, or delete it to make a report without benchmarks.',
        details: { file: latestFile },
        cause: error,
      });
    }
    result.latest = parseBenchRun(json, latestFile, '$');
  }
  const historyText = await readOptional(historyFile);
  if (historyText !== undefined) {
    historyText.split('\n').forEach((text, index) => {
      if (text.trim() === '') return;
      try {
        result.history.push(parseBenchRun(JSON.parse(text), historyFile, `line ${index + 1}: $`));
      } catch (error) {
        result.skippedHistoryLines.push({ line: index + 1, problem: (error as Error).message.split('\n')[0]! });
      }
    });
  }
  return result;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MacvmError('MACVM_REPORT_FAILED', `Cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

export function parseBenchRun(json: unknown, file: string, root = '$'): BenchRun {
  const v = new Validator(file);
  const o = v.object(json, root);
  const env = v.object(o.environment ?? {}, `${root}.environment`);
  const envString = (key: string) => v.optionalString(env[key], `${root}.environment.${key}`) ?? '';
  return {
    schema: 1,
    runId: v.optionalString(o.runId, `${root}.runId`) ?? '',
    at: v.optionalString(o.at, `${root}.at`) ?? '',
    suite: v.optionalString(o.suite, `${root}.suite`) ?? '',
    gitRef: v.optionalString(o.gitRef, `${root}.gitRef`),
    environment: {
      hostModel: envString('hostModel'),
      hostOs: envString('hostOs'),
      provider: envString('provider'),
      image: envString('image'),
      guestOs: v.optionalString(env.guestOs, `${root}.environment.guestOs`),
      cpus: v.optionalNumber(env.cpus, `${root}.environment.cpus`) ?? 0,
      memoryMiB: v.optionalNumber(env.memoryMiB, `${root}.environment.memoryMiB`) ?? 0,
    },
    workloads: v.array(o.workloads, `${root}.workloads`).map((w, i) => readWorkload(v, w, `${root}.workloads[${i}]`)),
  };
}

function readWorkload(v: Validator, value: unknown, path: string): WorkloadResult {
  const o = v.object(value, path);
  const ratio = v.object(o.ratio, `${path}.ratio`);
  const baseline = o.baseline === undefined || o.baseline === null ? undefined : v.object(o.baseline, `${path}.baseline`);
  return {
    name: v.string(o.name, `${path}.name`),
    kind: v.oneOf(o.kind ?? 'command', ['command', 'function'] as const, `${path}.kind`),
    host: readStats(v, o.host, `${path}.host`),
    guest: readStats(v, o.guest, `${path}.guest`),
    ratio: {
      median: requiredNumber(v, ratio.median, `${path}.ratio.median`),
      ciLow: v.optionalNumber(ratio.ciLow, `${path}.ratio.ciLow`) ?? (ratio.median as number),
      ciHigh: v.optionalNumber(ratio.ciHigh, `${path}.ratio.ciHigh`) ?? (ratio.median as number),
    },
    baseline: baseline && {
      against: v.optionalString(baseline.against, `${path}.baseline.against`) ?? '',
      change: requiredNumber(v, baseline.change, `${path}.baseline.change`),
      pValue: v.optionalNumber(baseline.pValue, `${path}.baseline.pValue`) ?? Number.NaN,
      verdict: v.oneOf(baseline.verdict, VERDICTS, `${path}.baseline.verdict`),
    },
  };
}

function readStats(v: Validator, value: unknown, path: string): SampleStats {
  const o = v.object(value, path);
  const median = requiredNumber(v, o.medianMs, `${path}.medianMs`);
  return {
    // Raw samples are not drawn; keeping them out keeps a long history's report small.
    samples: [],
    medianMs: median,
    meanMs: v.optionalNumber(o.meanMs, `${path}.meanMs`) ?? median,
    ciLowMs: v.optionalNumber(o.ciLowMs, `${path}.ciLowMs`) ?? median,
    ciHighMs: v.optionalNumber(o.ciHighMs, `${path}.ciHighMs`) ?? median,
  };
}

function requiredNumber(v: Validator, value: unknown, path: string): number {
  const n = v.optionalNumber(value, path);
  return n === undefined ? v.fail(path, 'is missing') : n;
}
