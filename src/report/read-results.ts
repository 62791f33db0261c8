import { readFile } from 'node:fs/promises';
import { MacvmError } from '../errors.js';
import type { Artifact, ErrorInfo, RunResult, SnapshotArtifact, SuiteResult, TestResult, TestStatus, VmFacts } from '../shared/results.js';
import { stripAnsi } from './text.js';

/**
 * Reads reports/results.json into a complete RunResult. Strict where the report cannot be
 * drawn without a value (suites, tests, names, statuses) and forgiving about the rest
 * (a missing duration is 0, missing artifacts are none), so a result file from an older or
 * interrupted run still makes a report. Anything wrong is a MACVM_REPORT_FAILED error that
 * names the file and the JSON path, e.g. `$.suites[2].tests[0].status`.
 */
export async function readRunResult(file: string): Promise<RunResult | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MacvmError('MACVM_REPORT_FAILED', `Cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new MacvmError('MACVM_REPORT_FAILED', `${file} is not valid JSON: ${(error as Error).message}`, {
      hint: 'Re-run `macvm test` to write a fresh results.json; it may have been cut short.',
      details: { file },
      cause: error,
    });
  }
  return parseRunResult(json, file);
}

/** Validates and completes a parsed results.json (exported for tests and for callers that hold the object). */
export function parseRunResult(json: unknown, file = 'results.json'): RunResult {
  const v = new Validator(file);
  const root = v.object(json, '$');
  const schema = root.schema;
  if (schema !== undefined && schema !== 1) v.fail('$.schema', `schema version ${JSON.stringify(schema)} is not supported (this macvm reads version 1)`);
  const suites = v.array(root.suites, '$.suites').map((suite, i) => readSuite(v, suite, `$.suites[${i}]`));
  const tests = suites.flatMap((s) => s.tests);
  const count = (status: TestStatus) => tests.filter((t) => t.status === status).length;
  const host = root.host === undefined ? undefined : v.object(root.host, '$.host');
  return {
    schema: 1,
    runId: v.optionalString(root.runId, '$.runId') ?? '',
    startedAt: v.optionalString(root.startedAt, '$.startedAt') ?? '',
    durationMs: v.optionalNumber(root.durationMs, '$.durationMs') ?? suites.reduce((sum, s) => sum + s.durationMs, 0),
    host: {
      platform: v.optionalString(host?.platform, '$.host.platform') ?? '',
      arch: v.optionalString(host?.arch, '$.host.arch') ?? '',
      cpus: v.optionalNumber(host?.cpus, '$.host.cpus') ?? 0,
      memoryMiB: v.optionalNumber(host?.memoryMiB, '$.host.memoryMiB') ?? 0,
      node: v.optionalString(host?.node, '$.host.node') ?? '',
      osRelease: v.optionalString(host?.osRelease, '$.host.osRelease') ?? '',
    },
    provider: v.optionalString(root.provider, '$.provider') ?? suites.find((s) => s.vm)?.vm?.provider ?? '',
    // Counted from the tests themselves, so the summary always agrees with the list below it.
    totals: { suites: suites.length, tests: tests.length, passed: count('passed'), failed: count('failed'), skipped: count('skipped'), flaky: count('flaky') },
    suites,
  };
}

const TEST_STATUSES: readonly TestStatus[] = ['passed', 'failed', 'skipped', 'flaky'];
const SUITE_STATUSES: readonly SuiteResult['status'][] = ['passed', 'failed', 'skipped'];
const ARTIFACT_KINDS: readonly Artifact['kind'][] = ['screenshot', 'snapshot', 'console-log', 'file'];

function readSuite(v: Validator, value: unknown, path: string): SuiteResult {
  const o = v.object(value, path);
  const tests = v.array(o.tests ?? [], `${path}.tests`).map((t, i) => readTest(v, t, `${path}.tests[${i}]`));
  const error = o.error === undefined || o.error === null ? undefined : readError(v, o.error, `${path}.error`);
  const name = v.string(o.name, `${path}.name`);
  return {
    id: v.optionalString(o.id, `${path}.id`) ?? path,
    name,
    file: v.optionalString(o.file, `${path}.file`) ?? '',
    status:
      o.status === undefined
        ? error || tests.some((t) => t.status === 'failed')
          ? 'failed'
          : 'passed'
        : v.oneOf(o.status, SUITE_STATUSES, `${path}.status`),
    durationMs: v.optionalNumber(o.durationMs, `${path}.durationMs`) ?? 0,
    vm: o.vm === undefined || o.vm === null ? undefined : readVm(v, o.vm, `${path}.vm`),
    error,
    tests,
    artifacts: v.array(o.artifacts ?? [], `${path}.artifacts`).map((a, i) => readArtifact(v, a, `${path}.artifacts[${i}]`)),
  };
}

function readTest(v: Validator, value: unknown, path: string): TestResult {
  const o = v.object(value, path);
  const name = v.string(o.name, `${path}.name`);
  return {
    id: v.optionalString(o.id, `${path}.id`) ?? path,
    name,
    fullName: v.optionalString(o.fullName, `${path}.fullName`) ?? name,
    status: v.oneOf(o.status, TEST_STATUSES, `${path}.status`),
    durationMs: v.optionalNumber(o.durationMs, `${path}.durationMs`) ?? 0,
    retries: v.optionalNumber(o.retries, `${path}.retries`) ?? 0,
    error: o.error === undefined || o.error === null ? undefined : readError(v, o.error, `${path}.error`),
    artifacts: v.array(o.artifacts ?? [], `${path}.artifacts`).map((a, i) => readArtifact(v, a, `${path}.artifacts[${i}]`)),
  };
}

function readError(v: Validator, value: unknown, path: string): ErrorInfo {
  // A bare string is accepted as the message: some reporters flatten errors that way.
  if (typeof value === 'string') return { message: stripAnsi(value) };
  const o = v.object(value, path);
  const text = (field: string) => {
    const s = v.optionalString(o[field], `${path}.${field}`);
    return s === undefined ? undefined : stripAnsi(s);
  };
  return { message: text('message') ?? '', stack: text('stack'), code: text('code'), consoleTail: text('consoleTail') };
}

function readVm(v: Validator, value: unknown, path: string): VmFacts {
  const o = v.object(value, path);
  return {
    vmId: v.optionalString(o.vmId, `${path}.vmId`) ?? '',
    provider: v.optionalString(o.provider, `${path}.provider`) ?? '',
    image: v.optionalString(o.image, `${path}.image`) ?? '',
    cpus: v.optionalNumber(o.cpus, `${path}.cpus`) ?? 0,
    memoryMiB: v.optionalNumber(o.memoryMiB, `${path}.memoryMiB`) ?? 0,
    bootMs: v.optionalNumber(o.bootMs, `${path}.bootMs`) ?? 0,
    readyMs: v.optionalNumber(o.readyMs, `${path}.readyMs`) ?? 0,
    guestOs: v.optionalString(o.guestOs, `${path}.guestOs`),
    consoleLog: v.optionalString(o.consoleLog, `${path}.consoleLog`),
  };
}

function readArtifact(v: Validator, value: unknown, path: string): Artifact {
  const o = v.object(value, path);
  const snapshot = o.snapshot === undefined || o.snapshot === null ? undefined : readSnapshot(v, o.snapshot, `${path}.snapshot`);
  return {
    kind: v.oneOf(o.kind, ARTIFACT_KINDS, `${path}.kind`),
    name: v.optionalString(o.name, `${path}.name`) ?? '',
    path: v.optionalString(o.path, `${path}.path`) ?? snapshot?.actual ?? v.fail(`${path}.path`, 'is missing'),
    contentType: v.optionalString(o.contentType, `${path}.contentType`),
    snapshot,
  };
}

function readSnapshot(v: Validator, value: unknown, path: string): SnapshotArtifact {
  const o = v.object(value, path);
  return {
    name: v.optionalString(o.name, `${path}.name`) ?? '',
    expected: v.optionalString(o.expected, `${path}.expected`),
    actual: v.string(o.actual, `${path}.actual`),
    diff: v.optionalString(o.diff, `${path}.diff`),
    diffPixels: v.optionalNumber(o.diffPixels, `${path}.diffPixels`) ?? 0,
    diffRatio: v.optionalNumber(o.diffRatio, `${path}.diffRatio`) ?? 0,
    width: v.optionalNumber(o.width, `${path}.width`) ?? 0,
    height: v.optionalNumber(o.height, `${path}.height`) ?? 0,
    environmentMismatch: v.optionalString(o.environmentMismatch, `${path}.environmentMismatch`),
    environmentNote: v.optionalString(o.environmentNote, `${path}.environmentNote`),
    baseline: readBaselineWrite(v, o.baseline, `${path}.baseline`),
  };
}

function readBaselineWrite(v: Validator, value: unknown, path: string): SnapshotArtifact['baseline'] {
  if (value === undefined || value === null) return undefined;
  const o = v.object(value, path);
  return { status: v.oneOf(o.status, ['written', 'updated'] as const, `${path}.status`), path: v.string(o.path, `${path}.path`) };
}

/** Type checks that throw one coded error naming the file and the JSON path. */
export class Validator {
  constructor(private readonly file: string) {}

  fail(path: string, problem: string): never {
    throw new MacvmError('MACVM_REPORT_FAILED', `${this.file}: ${path} ${problem}.`, {
      hint: 'The file does not follow the results schema (src/shared/results.ts); re-run to regenerate it, or fix that value.',
      details: { file: this.file, path },
    });
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, `should be an object, got ${describe(value)}`);
    return value as Record<string, unknown>;
  }

  array(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) this.fail(path, `should be an array, got ${describe(value)}`);
    return value;
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string') this.fail(path, `should be a string, got ${describe(value)}`);
    return value;
  }

  optionalString(value: unknown, path: string): string | undefined {
    return value === undefined || value === null ? undefined : this.string(value, path);
  }

  optionalNumber(value: unknown, path: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(path, `should be a finite number, got ${describe(value)}`);
    return value;
  }

  oneOf<T extends string>(value: unknown, allowed: readonly T[], path: string): T {
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(path, `should be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${describe(value)}`);
    }
    return value as T;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const json = JSON.stringify(value);
  return typeof value === 'object' ? 'an object' : json.length > 40 ? `${typeof value} ${json.slice(0, 40)}…` : json;
}
