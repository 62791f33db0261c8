import { join } from 'node:path';
import { MacvmError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { renderHtml } from './html.js';
import { renderJunit } from './junit.js';
import { readBenchInputs } from './read-bench.js';
import { readRunResult } from './read-results.js';

export interface GenerateReportOptions {
  /** The reports folder holding results.json and bench/; index.html and junit.xml are written here. */
  reportsDir: string;
  /** Write index.html (default true; config `reports.html`). */
  html?: boolean;
  /** Write junit.xml (default true; config `reports.junit`). */
  junit?: boolean;
  /** The bench history file, when the config's `bench.history` puts it outside bench/ (default `<reportsDir>/bench/history.jsonl`). */
  benchHistory?: string;
}

export interface GeneratedReport {
  /** Absolute or as-given path of index.html. */
  html: string;
  /** Path of junit.xml. */
  junit: string;
  /** Which of the two were written this time (both unless the options turned one off). */
  written: Array<'html' | 'junit'>;
}

/**
 * Makes reports/index.html and reports/junit.xml from reports/results.json and
 * reports/bench/{latest.json,history.jsonl}. Each input may be missing (the report says so);
 * if none exists there is nothing to report and that is an error. Files are replaced
 * atomically, so a browser or CI job never reads half a report.
 */
export async function generateReport({ reportsDir, html: wantHtml = true, junit: wantJunit = true, benchHistory }: GenerateReportOptions): Promise<GeneratedReport> {
  const resultsFile = join(reportsDir, 'results.json');
  const run = await readRunResult(resultsFile);
  const bench = await readBenchInputs(join(reportsDir, 'bench', 'latest.json'), benchHistory ?? join(reportsDir, 'bench', 'history.jsonl'));
  if (!run && !bench.latest && bench.history.length === 0) {
    throw new MacvmError('MACVM_REPORT_FAILED', `Nothing to report in ${reportsDir}: no results.json and no bench/latest.json or bench/history.jsonl.`, {
      hint: 'Run `macvm test` (or `macvm bench`) first, or pass --reports-dir pointing at the folder they wrote.',
      details: { reportsDir },
    });
  }
  const html = join(reportsDir, 'index.html');
  const junit = join(reportsDir, 'junit.xml');
  try {
    if (wantHtml) await writeFileAtomic(html, renderHtml({ run, bench, generatedAt: new Date().toISOString() }));
    // Without test results there is nothing for CI to count; an empty <testsuites> is still valid.
    if (wantJunit) await writeFileAtomic(junit, renderJunit(run ?? emptyRun()));
  } catch (error) {
    throw new MacvmError('MACVM_REPORT_FAILED', `Could not write the report into ${reportsDir}: ${(error as Error).message}`, {
      hint: 'Check that the folder is writable and the disk is not full.',
      cause: error,
    });
  }
  const written: GeneratedReport['written'] = [];
  if (wantHtml) written.push('html');
  if (wantJunit) written.push('junit');
  return { html, junit, written };
}

function emptyRun() {
  return {
    schema: 1 as const,
    runId: '',
    startedAt: '',
    durationMs: 0,
    host: { platform: '', arch: '', cpus: 0, memoryMiB: 0, node: '', osRelease: '' },
    provider: '',
    totals: { suites: 0, tests: 0, passed: 0, failed: 0, skipped: 0, flaky: 0 },
    suites: [],
  };
}
