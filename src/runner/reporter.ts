import { arch, cpus, platform, release, totalmem } from 'node:os';
import { relative, resolve } from 'node:path';
import type { Reporter, TestCase, TestModule, TestSuite, Vitest } from 'vitest/node';
import { writeFileAtomic } from '../util/atomic-write.js';
import { interruptedBy } from './interrupt.js';
import './task-meta.js';
import { RESULTS_SCHEMA_VERSION, type Artifact, type ErrorInfo, type RunResult, type SuiteResult, type TestResult } from '../shared/results.js';

export interface MacvmReporterOptions {
  reportsDir?: string;
  /** The config's `bench.history`, for the report's bench section (default `<reportsDir>/bench/history.jsonl`). */
  benchHistory?: string;
  provider?: string;
  /** Also write index.html and junit.xml (default true). */
  html?: boolean;
  junit?: boolean;
  /** Print where the report is. */
  log?: (line: string) => void;
}

interface SerializedErrorLike {
  message?: string;
  stack?: string;
  name?: string;
  code?: string;
  details?: { consoleTail?: string };
}

/**
 * Turns vitest's results into reports/results.json (src/shared/results.ts), then the
 * HTML report and JUnit XML. A suite is whatever withMacVM() made: its VM facts come
 * from the suite's meta, failure artifacts from each test's meta.
 */
export class MacvmReporter implements Reporter {
  private root = process.cwd();
  private readonly started = Date.now();

  constructor(private readonly options: MacvmReporterOptions = {}) {}

  onInit(vitest: Vitest): void {
    this.root = vitest.config.root;
  }

  async onTestRunEnd(modules: ReadonlyArray<TestModule>): Promise<void> {
    // An interrupted run writes its report from what had run when the signal came (./interrupt.ts).
    if (interruptedBy()) return;
    // Nothing ran (a filter that matched no file): an empty report must not replace the last real one.
    if (modules.length === 0) {
      this.options.log?.('macvm: no test files ran; the reports directory is left as it was');
      return;
    }
    await this.write(this.build(modules));
  }

  /** The report of a run stopped by `signal`: suites that had not finished are marked interrupted. */
  interruptedReport(modules: ReadonlyArray<TestModule>, signal: NodeJS.Signals): { write(): Promise<void> } {
    const result = this.build(modules, signal);
    return { write: () => this.write(result) };
  }

  private build(modules: ReadonlyArray<TestModule>, interrupted?: NodeJS.Signals): RunResult {
    const suites = modules.flatMap((module) => this.suitesOf(module, interrupted));
    const tests = suites.flatMap((s) => s.tests);
    const result: RunResult = {
      schema: RESULTS_SCHEMA_VERSION,
      runId: `run-${new Date(this.started).toISOString().replace(/[:.]/g, '-')}`,
      startedAt: new Date(this.started).toISOString(),
      durationMs: Date.now() - this.started,
      host: { platform: platform(), arch: arch(), cpus: cpus().length, memoryMiB: Math.round(totalmem() / 2 ** 20), node: process.version, osRelease: release() },
      provider: this.options.provider ?? process.env.MACVM_PROVIDER ?? suites.find((s) => s.vm)?.vm?.provider ?? 'unknown',
      totals: {
        suites: suites.length,
        tests: tests.length,
        passed: tests.filter((t) => t.status === 'passed').length,
        failed: tests.filter((t) => t.status === 'failed').length,
        skipped: tests.filter((t) => t.status === 'skipped').length,
        flaky: tests.filter((t) => t.status === 'flaky').length,
      },
      suites,
      ...(interrupted ? { interrupted } : {}),
    };
    return result;
  }

  private async write(result: RunResult): Promise<void> {
    const reportsDir = resolve(this.root, this.options.reportsDir ?? process.env.MACVM_REPORTS_DIR ?? 'reports');
    await writeFileAtomic(resolve(reportsDir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
    for (const line of environmentNotes(result.suites.flatMap((s) => s.tests))) this.options.log?.(line);
    if (this.options.html !== false || this.options.junit !== false) {
      const { generateReport } = await import('../report/index.js');
      const written = await generateReport({ reportsDir, html: this.options.html, junit: this.options.junit, benchHistory: this.options.benchHistory });
      const shown = written.written[0] === 'junit' ? written.junit : written.html;
      this.options.log?.(`macvm report: ${relative(process.cwd(), shown)}`);
    }
  }

  /** One SuiteResult per top-level describe; tests outside any describe form a suite named after the file. */
  private suitesOf(module: TestModule, interrupted?: NodeJS.Signals): SuiteResult[] {
    const file = relative(this.root, module.moduleId);
    const results: SuiteResult[] = [];
    const loose: TestCase[] = [];
    for (const child of module.children) {
      if (child.type === 'suite') results.push(this.suiteResult(child, file, interrupted));
      else loose.push(child);
    }
    if (loose.length > 0 || (results.length === 0 && module.errors().length > 0)) {
      const tests = loose.map((t) => this.testResult(t));
      // Fixture-form tests (macvmTest) share a file-scoped VM, reported on the file.
      const vm = module.meta().macvm;
      results.push({
        id: module.id,
        name: file,
        file,
        ...(vm ? { vm } : {}),
        status: statusOf(tests, module.errors().length > 0),
        durationMs: module.diagnostic().duration,
        error: firstError(module.errors() as SerializedErrorLike[]),
        tests,
        artifacts: [],
      });
    }
    return results;
  }

  private suiteResult(suite: TestSuite, file: string, interrupted?: NodeJS.Signals): SuiteResult {
    const all = [...suite.children.allTests()];
    const tests = all.map((t) => this.testResult(t));
    // Stopped part-way: some tests had not finished (running or still queued) when the signal came.
    const cut = interrupted !== undefined && all.some((t) => t.result().state === 'pending');
    if (cut) {
      return {
        id: suite.id,
        name: suite.name,
        file,
        status: 'failed',
        interrupted: true,
        durationMs: tests.reduce((sum, t) => sum + t.durationMs, 0),
        vm: suite.meta().macvm,
        error: { message: `Interrupted by ${interrupted} before the suite finished; its VM was stopped.`, code: 'MACVM_INTERRUPTED' },
        tests,
        artifacts: [],
      };
    }
    const errors = suite.errors() as SerializedErrorLike[];
    const meta = suite.meta();
    const artifacts: Artifact[] = meta.macvm?.consoleLog ? [{ kind: 'console-log', name: 'console.log', path: meta.macvm.consoleLog, contentType: 'text/plain' }] : [];
    // A suite whose VM never became ready has no facts, only the console log it kept.
    artifacts.push(...(meta.macvmArtifacts ?? []));
    return {
      id: suite.id,
      name: suite.name,
      file,
      status: statusOf(tests, errors.length > 0 || suite.state() === 'failed'),
      durationMs: tests.reduce((sum, t) => sum + t.durationMs, 0),
      vm: meta.macvm,
      error: firstError(errors),
      tests,
      artifacts,
    };
  }

  private testResult(test: TestCase): TestResult {
    const result = test.result();
    const diagnostic = test.diagnostic();
    const meta = test.meta();
    const status: TestResult['status'] =
      result.state === 'failed' ? 'failed' : result.state === 'passed' ? (diagnostic?.flaky ? 'flaky' : 'passed') : 'skipped';
    const error = result.state === 'failed' ? firstError(result.errors as unknown as SerializedErrorLike[]) : undefined;
    if (error && meta.macvmConsoleTail && !error.consoleTail) error.consoleTail = meta.macvmConsoleTail;
    return {
      id: test.id,
      name: test.name,
      fullName: test.fullName.replace(/ > /g, ' › '),
      status,
      durationMs: Math.round(diagnostic?.duration ?? 0),
      retries: diagnostic?.retryCount ?? 0,
      error,
      artifacts: meta.macvmArtifacts ?? [],
    };
  }
}

function statusOf(tests: TestResult[], hasErrors: boolean): SuiteResult['status'] {
  if (hasErrors || tests.some((t) => t.status === 'failed')) return 'failed';
  if (tests.length > 0 && tests.every((t) => t.status === 'skipped')) return 'skipped';
  return 'passed';
}

function firstError(errors: ReadonlyArray<SerializedErrorLike> | undefined): ErrorInfo | undefined {
  const error = errors?.[0];
  if (!error) return undefined;
  return {
    message: error.message ?? String(error),
    stack: error.stack,
    code: typeof error.code === 'string' && error.code.startsWith('MACVM_') ? error.code : undefined,
    consoleTail: error.details?.consoleTail || undefined,
  };
}

/**
 * Snapshot events a person should know about: baselines this run wrote or updated (-u) and
 * passes against a baseline from another environment ("baseline from linux (6.1.0-56…), pixels match").
 */
function environmentNotes(tests: TestResult[]): string[] {
  return tests.flatMap((test) =>
    test.artifacts.flatMap((artifact) => {
      const snapshot = artifact.snapshot;
      if (!snapshot) return [];
      const lines: string[] = [];
      if (snapshot.baseline) lines.push(`macvm snapshot "${snapshot.name}" (${test.fullName}): ${snapshot.baseline.status} ${snapshot.baseline.path}`);
      if (snapshot.environmentNote) lines.push(`macvm snapshot "${snapshot.name}" (${test.fullName}): ${snapshot.environmentNote}`);
      return lines;
    }),
  );
}
