import type { RunResult, SuiteResult, TestStatus } from '../shared/results.js';
import { renderBenchSection } from './bench-html.js';
import { formatDuration, formatMemory } from './format.js';
import { reportScript } from './html-script.js';
import { REPORT_CSS } from './html-style.js';
import type { PageData, PageSuite } from './browser/page-data.js';
import type { BenchInputs } from './read-bench.js';
import { escapeHtml as h, jsonForScript } from './text.js';

export interface HtmlReportInput {
  /** Absent when there is no results.json (e.g. only a benchmark ran). */
  run?: RunResult;
  bench: BenchInputs;
  /** When the report was made (ISO), shown in the footer. */
  generatedAt: string;
}

/**
 * One self-contained HTML document: CSS and script inline, the run embedded as JSON and
 * rendered in the browser on demand, images referenced by relative path (never inlined)
 * so a run with dozens of screenshots stays a small file that opens quickly.
 */
export function renderHtml(input: HtmlReportInput): string {
  const { run } = input;
  const title = run ? `macvm report — ${statusWord(run)}` : 'macvm report';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data: file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>${h(title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<main>
${renderHeader(run)}
${run ? renderTestsShell(run) : '<p class="empty">No test results in this reports folder (results.json not found). Run <code>macvm test</code> to make them.</p>'}
${renderBenchSection(input.bench)}
<footer>Made by macvm on ${h(input.generatedAt)} · works offline; images are files beside this page.</footer>
</main>
<script type="application/json" id="macvm-data">${jsonForScript({ suites: run ? compactSuites(run.suites) : [] } satisfies PageData)}</script>
${run ? `<script>${reportScript()}</script>` : ''}
</body>
</html>
`;
}

function statusWord(run: RunResult): string {
  const suiteErrors = run.suites.filter((s) => s.error).length;
  if (run.totals.failed > 0 || suiteErrors > 0) return `${run.totals.failed + suiteErrors} failed`;
  return run.totals.tests === 0 ? 'no tests' : 'passed';
}

function renderHeader(run: RunResult | undefined): string {
  if (!run) return '<header class="run-header"><h1>macvm report</h1></header>';
  const host = run.host;
  const facts = [
    run.startedAt ? run.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '',
    `took ${formatDuration(run.durationMs)}`,
    run.provider ? `provider ${run.provider}` : '',
    [host.platform, host.arch].filter(Boolean).join('/'),
    host.osRelease,
    host.cpus ? `${host.cpus} CPU` : '',
    host.memoryMiB ? formatMemory(host.memoryMiB) : '',
    host.node ? `node ${host.node}` : '',
    run.runId ? `run ${run.runId}` : '',
  ]
    .filter(Boolean)
    .map((f) => `<span class="chip">${h(f)}</span>`)
    .join('');
  const suiteErrors = run.suites.filter((s) => s.error).length;
  const verdict = statusWord(run);
  const verdictClass = verdict === 'passed' ? 'good' : verdict === 'no tests' ? 'muted' : 'bad';
  return `<header class="run-header">
<h1>macvm report <span class="${verdictClass}" data-testid="verdict">${h(verdict)}</span></h1>
<div class="facts" data-testid="run-facts">${facts}</div>
<div class="muted">${run.totals.suites} suite(s) · ${run.totals.tests} test(s)${suiteErrors ? ` · <span class="bad">${suiteErrors} suite error(s) (VM or setup)</span>` : ''}</div>
</header>`;
}

const FILTERS: Array<{ status: 'all' | TestStatus; label: string }> = [
  { status: 'all', label: 'All' },
  { status: 'failed', label: 'Failed' },
  { status: 'flaky', label: 'Flaky' },
  { status: 'passed', label: 'Passed' },
  { status: 'skipped', label: 'Skipped' },
];

/** The sticky filter bar and the empty list the script fills. */
function renderTestsShell(run: RunResult): string {
  const count = (status: 'all' | TestStatus) => (status === 'all' ? run.totals.tests : run.totals[status]);
  const buttons = FILTERS.map(
    (f) =>
      `<button type="button" class="filter" data-status="${f.status}" aria-pressed="${f.status === 'all'}">${f.status === 'all' ? '' : `<span class="dot s-${f.status}"></span>`}${f.label} <span class="count">${count(f.status)}</span></button>`,
  ).join('');
  return `<section id="tests" aria-label="Tests">
<div class="summary-bar">
<div class="filters" role="group" aria-label="Filter by status">${buttons}</div>
<input id="search" class="search" type="search" placeholder="Filter by test, suite or file name" aria-label="Search tests" autocomplete="off">
<span id="shown" class="shown muted small" aria-live="polite"></span>
</div>
<noscript><p class="empty">The test list needs JavaScript; results.json beside this file holds the same data.</p></noscript>
<div id="suites"></div>
</section>`;
}

/**
 * The suites as the page script reads them, minus what it can infer: a fullName that is just
 * "suite › name", zero retries, empty artifact lists. Thousands of tests make this most of
 * the file, so it is about a third smaller and parses faster.
 */
function compactSuites(suites: SuiteResult[]): PageSuite[] {
  return suites.map((suite) => ({
    ...suite,
    artifacts: suite.artifacts.length > 0 ? suite.artifacts : undefined,
    tests: suite.tests.map((test) => ({
      ...test,
      fullName: test.fullName === `${suite.name} › ${test.name}` || test.fullName === test.name ? undefined : test.fullName,
      retries: test.retries || undefined,
      artifacts: test.artifacts.length > 0 ? test.artifacts : undefined,
    })),
  }));
}
