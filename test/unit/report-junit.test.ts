import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { generateReport } from '../../src/report/generate.js';
import { parseRunResult } from '../../src/report/read-results.js';
import { renderJunit } from '../../src/report/junit.js';
import { buildReportsDir, XSS_NAME } from '../fixtures/report/build-reports-dir.js';
import { findAll, parseXml, type XmlElement } from '../fixtures/report/strict-xml.js';

describe('strict XML checker (used to validate junit.xml)', () => {
  it.each([
    ['<a><b></a></b>', 'closes'],
    ['<a x=1/>', 'not quoted'],
    ['<a x="1" x="2"/>', 'duplicate'],
    ['<a>&nbsp;</a>', 'unknown entity'],
    ['<a>\u0001</a>', 'illegal character'],
    ['<a/><b/>', 'after the root'],
    ['<a>x &amp y</a>', 'unterminated entity'],
  ])('rejects %s', (xml, why) => {
    expect(() => parseXml(xml)).toThrow(why);
  });

  it('accepts and decodes a well-formed document', () => {
    const root = parseXml('<?xml version="1.0"?>\n<a k="&quot;x&#10;y&quot;"><b>1 &lt; 2 &#x2713;</b><b/></a>');
    expect(root.attributes.k).toBe('"x\ny"');
    expect(findAll(root, 'b').map((b) => b.text)).toEqual(['1 < 2 ✓', '']);
  });
});

describe('junit.xml', () => {
  let dir: string;
  let run: RunResult;
  let root: XmlElement;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-report-junit-'));
    run = await buildReportsDir(dir, { bench: false });
    const { junit } = await generateReport({ reportsDir: dir });
    root = parseXml(await readFile(junit, 'utf8'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has one <testsuite> per suite with counts that match the results', () => {
    expect(root.name).toBe('testsuites');
    const suites = findAll(root, 'testsuite');
    expect(suites.map((s) => s.attributes.name)).toEqual(run.suites.map((s) => s.name));
    for (const [i, element] of suites.entries()) {
      const suite = run.suites[i]!;
      const cases = findAll(element, 'testcase');
      const syntheticErrors = suite.error ? 1 : 0;
      expect(Number(element.attributes.tests)).toBe(suite.tests.length + syntheticErrors);
      expect(cases).toHaveLength(suite.tests.length + syntheticErrors);
      expect(Number(element.attributes.failures)).toBe(suite.tests.filter((t) => t.status === 'failed').length);
      expect(Number(element.attributes.failures)).toBe(findAll(element, 'failure').length);
      expect(Number(element.attributes.skipped)).toBe(findAll(element, 'skipped').length);
      expect(Number(element.attributes.errors)).toBe(findAll(element, 'error').length);
      expect(Number(element.attributes.time)).toBeCloseTo(suite.durationMs / 1000, 3);
      expect(element.attributes.timestamp).toBe(run.startedAt);
      expect(element.attributes.hostname).toBe(suite.vm?.vmId ?? 'localhost');
    }
    const sum = (attr: string) => suites.reduce((n, s) => n + Number(s.attributes[attr]), 0);
    for (const attr of ['tests', 'failures', 'errors', 'skipped']) expect(Number(root.attributes[attr])).toBe(sum(attr));
    expect(Number(root.attributes.failures)).toBe(run.totals.failed);
    expect(Number(root.attributes.skipped)).toBe(run.totals.skipped);
  });

  it('carries failure messages, types and artifact paths', () => {
    const login = findAll(root, 'testsuite').find((s) => s.attributes.name === 'login screen')!;
    const failing = findAll(login, 'testcase').find((c) => c.attributes.name === 'matches the login snapshot')!;
    expect(failing.attributes.classname).toBe('specs/login.spec.ts');
    const failure = findAll(failing, 'failure')[0]!;
    expect(failure.attributes.type).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect(failure.attributes.message).toBe('Snapshot "login" differs: 1600 pixels (10.00 %) changed');
    expect(failure.text).toContain('at specs/login.spec.ts:14:5');
    const out = findAll(failing, 'system-out')[0]!.text.split('\n');
    expect(out).toEqual(['[[ATTACHMENT|snapshots/login/actual.png]]', '[[ATTACHMENT|snapshots/login/expected.png]]', '[[ATTACHMENT|snapshots/login/diff.png]]']);
    const flaky = findAll(login, 'testcase').find((c) => c.attributes.name === 'survives a reboot')!;
    expect(findAll(flaky, 'failure')).toHaveLength(0);
    expect(findAll(flaky, 'system-out')[0]!.text).toBe('flaky: passed after 2 retries');
  });

  it('reports a boot failure as <error> on a synthetic testcase with the console tail', () => {
    const broken = findAll(root, 'testsuite').find((s) => s.attributes.name === 'boots a broken image')!;
    const [setup] = findAll(broken, 'testcase');
    expect(setup!.attributes.name).toBe('boots a broken image (suite setup)');
    const error = findAll(setup!, 'error')[0]!;
    expect(error.attributes.type).toBe('MACVM_DEADLINE_EXCEEDED');
    expect(error.attributes.message).toContain('did not become ready');
    expect(error.text).toContain('Kernel panic - not syncing');
    expect(findAll(setup!, 'system-out')[0]!.text).toBe('[[ATTACHMENT|console/boot-fail.log]]');
  });

  it('keeps hostile text as text and replaces characters XML 1.0 forbids', () => {
    const hostile = findAll(root, 'testcase').find((c) => c.attributes.name === XSS_NAME);
    expect(hostile).toBeDefined();
    const failure = findAll(hostile!, 'failure')[0]!;
    expect(failure.attributes.message).toBe('expected "<script>alert(2)</script>" to be "ok" & done');
    // ANSI colour codes stripped, NUL and BEL replaced, the closing-tag text kept as text.
    expect(failure.text).toContain('login: root\nbad byte: \ufffd\ufffd end\n</pre><b>not bold</b>');
  });

  it('escapes every control character and lone surrogate a result can hold', () => {
    const nasty = Array.from({ length: 32 }, (_, c) => String.fromCharCode(c)).join('') + '\ud800 \udfff \uffff ok';
    const run = parseRunResult({
      schema: 1,
      suites: [{ name: `s${nasty}`, file: 'f.ts', status: 'failed', tests: [{ name: `t${nasty}`, status: 'failed', error: { message: nasty, stack: nasty } }] }],
    });
    const xml = renderJunit(run);
    const parsed = parseXml(xml);
    const failure = findAll(parsed, 'failure')[0]!;
    // The message attribute is the first line; tab survives, the other C0 controls become U+FFFD.
    expect(failure.attributes.message).toBe('\ufffd'.repeat(9) + '\t');
    expect(failure.text).toMatch(/\ufffd \ufffd \ufffd ok$/);
    expect(findAll(parsed, 'testcase')[0]!.attributes.name).toMatch(/^t/);
    expect(xml).not.toMatch(/[\ud800-\udfff]/);
  });
});
