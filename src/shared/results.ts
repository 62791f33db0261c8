/**
 * The result files under reports/ — the only thing src/report reads. Written by the
 * runner's reporter (reports/results.json) and by benchmarks (reports/bench/).
 * Paths inside are relative to the reports directory, so the folder can be moved.
 */
export const RESULTS_SCHEMA_VERSION = 1;

export type TestStatus = 'passed' | 'failed' | 'skipped' | 'flaky';

export interface ErrorInfo {
  message: string;
  stack?: string;
  /** MacvmError code, when the error was one. */
  code?: string;
  /** Last lines of the guest console when the failure happened. */
  consoleTail?: string;
}

export interface SnapshotArtifact {
  name: string;
  /** Paths relative to reports/. `expected` is absent when no baseline existed. */
  expected?: string;
  actual: string;
  diff?: string;
  diffPixels: number;
  diffRatio: number;
  width: number;
  height: number;
  /** Set on a failure against a baseline from another environment: what differs. */
  environmentMismatch?: string;
  /**
   * Set on a pass against a baseline from another environment: the pixels matched, and this
   * says where the baseline came from and what differs. Information, not a warning.
   */
  environmentNote?: string;
  /** Set when this run wrote the baseline (-u, or a first run): which file, relative to the project root. */
  baseline?: { status: 'written' | 'updated'; path: string };
}

export interface Artifact {
  kind: 'screenshot' | 'snapshot' | 'console-log' | 'file';
  name: string;
  /** Relative to reports/. For kind 'snapshot', the actual image. */
  path: string;
  contentType?: string;
  snapshot?: SnapshotArtifact;
}

export interface TestResult {
  id: string;
  name: string;
  /** Suite names and test name joined by " › ". */
  fullName: string;
  status: TestStatus;
  durationMs: number;
  /** How many retries ran (vitest --retry); a test that passed after a retry is 'flaky'. */
  retries: number;
  error?: ErrorInfo;
  artifacts: Artifact[];
}

export interface VmFacts {
  vmId: string;
  provider: string;
  image: string;
  cpus: number;
  memoryMiB: number;
  /** Clone + boot until the VM process runs. */
  bootMs: number;
  /** From the start of the chain until the wait strategy passed. */
  readyMs: number;
  guestOs?: string;
  /** Path (relative to reports/) of the saved console log. */
  consoleLog?: string;
}

export interface SuiteResult {
  id: string;
  name: string;
  /** Spec file, relative to the project root. */
  file: string;
  status: 'passed' | 'failed' | 'skipped';
  /** The run was stopped (Ctrl-C, SIGTERM) before this suite finished; status is 'failed'. */
  interrupted?: boolean;
  durationMs: number;
  vm?: VmFacts;
  /** Errors outside any test (boot failure, beforeAll/afterAll). */
  error?: ErrorInfo;
  tests: TestResult[];
  artifacts: Artifact[];
}

export interface RunResult {
  schema: typeof RESULTS_SCHEMA_VERSION;
  runId: string;
  startedAt: string;
  durationMs: number;
  host: { platform: string; arch: string; cpus: number; memoryMiB: number; node: string; osRelease: string };
  provider: string;
  totals: { suites: number; tests: number; passed: number; failed: number; skipped: number; flaky: number };
  suites: SuiteResult[];
  /** Set when the run was stopped by a signal: which one. */
  interrupted?: string;
}
