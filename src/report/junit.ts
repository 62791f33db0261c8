import type { Artifact, ErrorInfo, RunResult, SuiteResult, TestResult } from '../shared/results.js';
import { escapeXml, escapeXmlAttribute } from './text.js';

/**
 * JUnit XML as Jenkins, GitLab and GitHub test reporters read it:
 * <testsuites> → one <testsuite> per spec suite → <testcase> with <failure>/<skipped/>, artifact
 * paths as [[ATTACHMENT|path]] lines in <system-out>. A suite that failed outside its tests
 * (the VM did not boot, beforeAll threw) becomes an <error> on a synthetic testcase, so CI
 * counts it even when no test ran. Flaky tests (passed on a retry) count as passed.
 */
export function renderJunit(run: RunResult, options: { reportsDirForAttachments?: string } = {}): string {
  const suites = run.suites.map((suite) => renderSuite(suite, run, options.reportsDirForAttachments));
  const sum = (key: keyof SuiteCounts) => suites.reduce((n, s) => n + s.counts[key], 0);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="macvm"${attrs({
      tests: sum('tests'),
      failures: sum('failures'),
      errors: sum('errors'),
      skipped: sum('skipped'),
      time: seconds(run.durationMs),
      timestamp: run.startedAt || undefined,
    })}>`,
    ...suites.map((s) => s.xml),
    '</testsuites>',
    '',
  ];
  return lines.join('\n');
}

interface SuiteCounts {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
}

function renderSuite(suite: SuiteResult, run: RunResult, attachmentsDir: string | undefined): { xml: string; counts: SuiteCounts } {
  const classname = suite.file || suite.name;
  const cases = suite.tests.map((test) => renderTestCase(test, suite, classname, attachmentsDir));
  const counts: SuiteCounts = {
    tests: suite.tests.length,
    failures: suite.tests.filter((t) => t.status === 'failed').length,
    errors: 0,
    skipped: suite.tests.filter((t) => t.status === 'skipped').length,
  };
  if (suite.error) {
    counts.tests += 1;
    counts.errors += 1;
    const out = systemOut([...attachmentLines(suite.artifacts, attachmentsDir), ...(suite.vm?.consoleLog ? [attachment(suite.vm.consoleLog, attachmentsDir)] : [])]);
    cases.unshift(
      `    <testcase${attrs({ classname, name: `${suite.name} (suite setup)`, time: seconds(0) })}>\n` +
        `      <error${attrs({ message: firstLine(suite.error.message), type: suite.error.code ?? 'Error' })}>${escapeXml(errorBody(suite.error))}</error>\n` +
        out +
        '    </testcase>',
    );
  }
  const properties = suiteProperties(suite, run);
  const xml = [
    `  <testsuite${attrs({
      name: suite.name,
      tests: counts.tests,
      failures: counts.failures,
      errors: counts.errors,
      skipped: counts.skipped,
      time: seconds(suite.durationMs),
      timestamp: run.startedAt || undefined,
      hostname: suite.vm?.vmId || 'localhost',
      file: suite.file || undefined,
    })}>`,
    ...(properties.length > 0 ? ['    <properties>', ...properties.map(([name, value]) => `      <property${attrs({ name, value })}/>`), '    </properties>'] : []),
    ...cases,
    '  </testsuite>',
  ].join('\n');
  return { xml, counts };
}

function renderTestCase(test: TestResult, suite: SuiteResult, classname: string, attachmentsDir: string | undefined): string {
  const name = stripSuitePrefix(test.fullName || test.name, suite.name);
  const body: string[] = [];
  if (test.status === 'failed') {
    const error = test.error ?? { message: 'failed (no error recorded)' };
    body.push(`      <failure${attrs({ message: firstLine(error.message), type: error.code ?? 'AssertionError' })}>${escapeXml(errorBody(error))}</failure>`);
  } else if (test.status === 'skipped') {
    body.push('      <skipped/>');
  }
  const notes = test.status === 'flaky' ? [`flaky: passed after ${test.retries} ${test.retries === 1 ? 'retry' : 'retries'}`] : [];
  const out = systemOut([...notes, ...attachmentLines(test.artifacts, attachmentsDir)]);
  const open = `    <testcase${attrs({ classname, name, time: seconds(test.durationMs) })}`;
  if (body.length === 0 && out === '') return `${open}/>`;
  return `${open}>\n${body.map((b) => `${b}\n`).join('')}${out}    </testcase>`;
}

function suiteProperties(suite: SuiteResult, run: RunResult): Array<[string, string]> {
  const vm = suite.vm;
  const props: Array<[string, string | number | undefined]> = [
    ['macvm.provider', vm?.provider || run.provider],
    ['macvm.image', vm?.image],
    ['macvm.cpus', vm?.cpus || undefined],
    ['macvm.memoryMiB', vm?.memoryMiB || undefined],
    ['macvm.bootMs', vm ? Math.round(vm.bootMs) : undefined],
    ['macvm.readyMs', vm ? Math.round(vm.readyMs) : undefined],
    ['macvm.guestOs', vm?.guestOs],
    ['macvm.runId', run.runId || undefined],
  ];
  return props.filter((p): p is [string, string | number] => p[1] !== undefined && p[1] !== '').map(([k, v]) => [k, String(v)]);
}

function attachmentLines(artifacts: Artifact[], dir: string | undefined): string[] {
  const paths = artifacts.flatMap((a) => (a.snapshot ? [a.snapshot.actual, a.snapshot.expected, a.snapshot.diff] : [a.path]));
  return [...new Set(paths.filter((p): p is string => !!p))].map((p) => attachment(p, dir));
}

/** Jenkins' JUnit attachments plugin and GitLab read this marker; paths stay relative to reports/ unless a dir is given. */
function attachment(path: string, dir: string | undefined): string {
  const full = dir && !path.startsWith('/') ? `${dir.replace(/\/+$/, '')}/${path}` : path;
  return `[[ATTACHMENT|${full}]]`;
}

function systemOut(lines: string[]): string {
  return lines.length === 0 ? '' : `      <system-out>${escapeXml(lines.join('\n'))}</system-out>\n`;
}

function errorBody(error: ErrorInfo): string {
  const parts = [error.stack && error.stack.includes(firstLine(error.message)) ? error.stack : [error.message, error.stack].filter(Boolean).join('\n')];
  if (error.consoleTail) parts.push(`--- guest console (last lines) ---\n${error.consoleTail}`);
  return parts.join('\n\n');
}

function stripSuitePrefix(fullName: string, suiteName: string): string {
  const prefix = `${suiteName} › `;
  return suiteName && fullName.startsWith(prefix) ? fullName.slice(prefix.length) : fullName;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

function seconds(ms: number): string {
  return (Math.max(0, ms) / 1000).toFixed(3);
}

function attrs(values: Record<string, string | number | undefined>): string {
  return Object.entries(values)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${escapeXmlAttribute(String(v))}"`)
    .join('');
}
