import { arch, cpus, platform, release, totalmem } from 'node:os';
import { relative, resolve } from 'node:path';
import type { Reporter, TestCase, TestModule, TestSuite, Vitest } from 'vitest/node';
import { writeFileAtomic } from '../util/atomic-write.js';
import './task-meta.js';
import { RESULTS_SCHEMA_VERSION, type Artifact, type ErrorInfo, type RunResult, type SuiteResult, type TestResult } from './results.js';

export interface MacvmReporterOptions {
  reportsDir?: string;
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
 * Turns vitest's results into reports/results.json (src/runner/results.ts), then the
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
    const reportsDir = resolve(this.root, this.options.reportsDir ?? process.env.MACVM_REPORTS_DIR ?? 'reports');
    const suites = modules.flatMap((module) => this.suitesOf(module));
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
    };
    await writeFileAtomic(resolve(reportsDir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
    for (const line of environmentNotes(tests)) this.options.log?.(line);
    if (this.options.html !== false || this.options.junit !== false) {
      const { generateReport } = await import('../report/index.js');
      const written = await generateReport({ reportsDir, html: this.options.html, junit: this.options.junit });
      const shown = written.written[0] === 'junit' ? written.junit : written.html;
      this.options.log?.(`macvm report: ${relative(process.cwd(), shown)}`);
    }
  }

  /** One SuiteResult per top-level describe; tests outside any describe form a suite named after the file. */
  private suitesOf(module: TestModule): SuiteResult[] {
    const file = relative(this.root, module.moduleId);
    const results: SuiteResult[] = [];
    const loose: TestCase[] = [];
    for (const child of module.children) {
      if (child.type === 'suite') results.push(this.suiteResult(child, file));
      else loose.push(child);
    }
    if (loose.length > 0 || (results.length === 0 && module.errors().length > 0)) {
      const tests = loose.map((t) => this.testResult(t));
      results.push({
        id: module.id,
        name: file,
        file,
        status: statusOf(tests, module.errors().length > 0),
        durationMs: module.diagnostic().duration,
        error: firstError(module.errors() as SerializedErrorLike[]),
        tests,
        artifacts: [],
      });
    }
    return results;
  }

  private suiteResult(suite: TestSuite, file: string): SuiteResult {
    const tests = [...suite.children.allTests()].map((t) => this.testResult(t));
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

/** "snapshot console-banner: baseline from linux (6.1.0-56-cloud-amd64) / …, pixels match": a pass a person should know about. */
function environmentNotes(tests: TestResult[]): string[] {
  return tests.flatMap((test) =>
    test.artifacts.flatMap((artifact) => (artifact.snapshot?.environmentNote ? [`macvm snapshot "${artifact.snapshot.name}" (${test.fullName}): ${artifact.snapshot.environmentNote}`] : [])),
  );
}
