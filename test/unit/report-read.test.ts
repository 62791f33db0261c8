import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateReport } from '../../src/report/generate.js';
import { readBenchInputs } from '../../src/report/read-bench.js';
import { parseRunResult, readRunResult } from '../../src/report/read-results.js';
import { benchRun, buildReportsDir } from '../fixtures/report/build-reports-dir.js';
import { macvmErrorOf as caught } from '../support/macvm-error.js';


describe('reading results.json', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-report-read-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes only what the config asks for: reports.html and reports.junit turn off one each', async () => {
    await buildReportsDir(dir, { bench: false });
    const junitOnly = await generateReport({ reportsDir: dir, html: false });
    expect(junitOnly.written).toEqual(['junit']);
    expect(existsSync(junitOnly.html)).toBe(false);
    expect(await readFile(junitOnly.junit, 'utf8')).toMatch(/^<\?xml/);

    await rm(junitOnly.junit);
    const htmlOnly = await generateReport({ reportsDir: dir, junit: false });
    expect(htmlOnly.written).toEqual(['html']);
    expect(existsSync(htmlOnly.junit)).toBe(false);
    expect(await readFile(htmlOnly.html, 'utf8')).toMatch(/<html/i);
  });

  it('names the file and the JSON path of a wrong value', async () => {
    const run = await buildReportsDir(dir, { bench: false });
    (run.suites[2]!.tests[0] as unknown as { status: string }).status = 'exploded';
    await writeFile(join(dir, 'results.json'), JSON.stringify(run));
    const error = await caught(generateReport({ reportsDir: dir }));
    expect(error.code).toBe('MACVM_REPORT_FAILED');
    expect(error.message).toContain(join(dir, 'results.json'));
    expect(error.message).toContain('$.suites[2].tests[0].status');
    expect(error.message).toContain('"exploded"');
    expect(error.details).toMatchObject({ path: '$.suites[2].tests[0].status' });
  });

  it.each([
    [{ schema: 1, suites: {} }, '$.suites should be an array'],
    [{ schema: 2, suites: [] }, '$.schema'],
    [{ suites: [{ tests: [] }] }, '$.suites[0].name should be a string'],
    [{ suites: [{ name: 's', tests: [{ name: 't', status: 'passed', durationMs: 'slow' }] }] }, '$.suites[0].tests[0].durationMs should be a finite number'],
    [{ suites: [{ name: 's', tests: [{ name: 't', status: 'failed', artifacts: [{ kind: 'video', path: 'x' }] }] }] }, '$.suites[0].tests[0].artifacts[0].kind'],
    [[], '$ should be an object'],
  ])('rejects %j', (json, message) => {
    expect(() => parseRunResult(json, 'r.json')).toThrow(message);
  });

  it('says when results.json is not JSON at all', async () => {
    await writeFile(join(dir, 'results.json'), '{"schema": 1, "suites": [');
    const error = await caught(generateReport({ reportsDir: dir }));
    expect(error.code).toBe('MACVM_REPORT_FAILED');
    expect(error.message).toMatch(/results\.json is not valid JSON/);
  });

  it('fills what an older or partial file leaves out and counts totals from the tests', () => {
    const run = parseRunResult({
      suites: [{ name: 'only names', error: 'boot failed', tests: [{ name: 'a', status: 'failed' }, { name: 'b', status: 'flaky' }] }],
      totals: { tests: 99 },
    });
    const suite = run.suites[0]!;
    expect(suite.status).toBe('failed');
    expect(suite.error).toEqual({ message: 'boot failed' });
    expect(suite.tests.map((t) => [t.fullName, t.durationMs, t.artifacts.length])).toEqual([
      ['a', 0, 0],
      ['b', 0, 0],
    ]);
    expect(run.totals).toEqual({ suites: 1, tests: 2, passed: 0, failed: 1, skipped: 0, flaky: 1 });
  });

  it('strips terminal colour codes from errors', () => {
    const run = parseRunResult({ suites: [{ name: 's', tests: [{ name: 't', status: 'failed', error: { message: '\x1b[31mexpected\x1b[39m 1', consoleTail: '\x1b[1mboot\x1b[0m' } }] }] });
    expect(run.suites[0]!.tests[0]!.error).toMatchObject({ message: 'expected 1', consoleTail: 'boot' });
  });

  it('returns nothing for a missing results.json, and the report says so', async () => {
    expect(await readRunResult(join(dir, 'results.json'))).toBeUndefined();
    await mkdir(join(dir, 'bench'));
    await writeFile(join(dir, 'bench', 'latest.json'), JSON.stringify(benchRun(0)));
    const { html } = await generateReport({ reportsDir: dir });
    expect(await readFile(html, 'utf8')).toContain('No test results in this reports folder');
  });

  it('refuses an empty reports folder with a hint', async () => {
    const error = await caught(generateReport({ reportsDir: dir }));
    expect(error.code).toBe('MACVM_REPORT_FAILED');
    expect(error.message).toMatch(/Nothing to report/);
    expect(error.hint).toMatch(/macvm test/);
  });
});

describe('reading benchmark records', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-report-bench-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('skips a torn history line and keeps the other runs', async () => {
    const history = join(dir, 'history.jsonl');
    await writeFile(history, [JSON.stringify(benchRun(0)), JSON.stringify(benchRun(1)), '{"schema":1,"runId":"cut'].join('\n'));
    const bench = await readBenchInputs(join(dir, 'latest.json'), history);
    expect(bench.latest).toBeUndefined();
    expect(bench.history.map((r) => r.runId)).toEqual(['bench-0', 'bench-1']);
    expect(bench.skippedHistoryLines).toEqual([{ line: 3, problem: expect.stringContaining('JSON') }]);
  });

  it('names the JSON path of a bad latest.json', async () => {
    const latest = benchRun(1) as unknown as { workloads: Array<{ ratio: unknown }> };
    latest.workloads[1]!.ratio = { ciLow: 1 };
    await writeFile(join(dir, 'latest.json'), JSON.stringify(latest));
    const error = await caught(readBenchInputs(join(dir, 'latest.json'), join(dir, 'none.jsonl')));
    expect(error.code).toBe('MACVM_REPORT_FAILED');
    expect(error.message).toContain('$.workloads[1].ratio.median is missing');
  });

  it('does not carry raw samples into the report', async () => {
    await writeFile(join(dir, 'latest.json'), JSON.stringify(benchRun(2)));
    const bench = await readBenchInputs(join(dir, 'latest.json'), join(dir, 'none.jsonl'));
    expect(bench.latest!.workloads[0]!.guest.samples).toEqual([]);
    expect(bench.latest!.workloads[0]!.guest.medianMs).toBeCloseTo(80 * 4.1 * 1.06);
  });
});
