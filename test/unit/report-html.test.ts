import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { generateReport } from '../../src/report/generate.js';
import { renderHtml } from '../../src/report/html.js';
import { escapeHtml, jsonForScript, relativeUrl, stripAnsi } from '../../src/report/text.js';
import { buildReportsDir, XSS_NAME } from '../fixtures/report/build-reports-dir.js';

describe('index.html (static checks; the browser test drives it)', () => {
  let dir: string;
  let html: string;
  let run: RunResult;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-report-html-'));
    run = await buildReportsDir(dir);
    html = await readFile((await generateReport({ reportsDir: dir })).html, 'utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is self-contained: no external scripts, styles, fonts or fetches', () => {
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/\bfetch\(|XMLHttpRequest|import\(/);
  });

  it('does not inline image bytes', async () => {
    const png = await readFile(join(dir, 'snapshots/login/actual.png'));
    expect(html).not.toContain('data:image/png;base64');
    expect(html).not.toContain(png.toString('base64').slice(0, 40));
    expect(html.length).toBeLessThan(120_000);
  });

  it('embeds the run as JSON that cannot close its script element', () => {
    const match = /<script type="application\/json" id="macvm-data">([\s\S]*?)<\/script>/.exec(html);
    expect(match).not.toBeNull();
    expect(match![1]).not.toContain('<');
    const data = JSON.parse(match![1]!) as { suites: RunResult['suites'] };
    expect(data.suites.flatMap((s) => s.tests.map((t) => t.name))).toContain(XSS_NAME);
    expect(data.suites.map((s) => s.name)).toEqual(run.suites.map((s) => s.name));
  });

  it('never writes a hostile name or error into the markup', () => {
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<b>not bold');
  });

  it('renders the bench table and one chart per workload from latest + history', () => {
    expect(html).toContain('data-testid="bench-table"');
    expect(html.match(/<tr data-workload=/g)).toHaveLength(2);
    expect(html).toContain('<tr data-workload="sha256 &lt;file&gt;">');
    expect(html.match(/<figure class="chart"/g)).toHaveLength(2);
    // Six history runs → six points with whiskers per chart.
    const gzipChart = /<figure class="chart" data-workload="guest speed › gzip 10 MiB">([\s\S]*?)<\/figure>/.exec(html)![1]!;
    expect(gzipChart.match(/<circle /g)).toHaveLength(6);
    expect(gzipChart).toContain('<polyline class="trend"');
    expect(html).toMatch(/class="verdict bad">slower/);
  });

  it('says briefly when there are no benchmarks', () => {
    const page = renderHtml({ run, bench: { history: [], skippedHistoryLines: [] }, generatedAt: 'now' });
    expect(page).toContain('No benchmark results in this reports folder');
    expect(page).not.toContain('bench-table');
  });

  it('shows the run summary with filter counts', () => {
    expect(html).toMatch(/data-status="failed" aria-pressed="false">.*Failed <span class="count">2<\/span>/);
    expect(html).toMatch(/data-status="flaky" aria-pressed="false">.*Flaky <span class="count">1<\/span>/);
    expect(html).toContain('1 suite error(s)');
    expect(html).toContain('provider qemu');
  });
});

describe('text helpers', () => {
  it('escapes HTML metacharacters', () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
  it('keeps </script> and U+2028 out of embedded JSON and round-trips', () => {
    const value = { s: '</script><!-- \u2028 \u2029' };
    const json = jsonForScript(value);
    expect(json).not.toMatch(/[<\u2028\u2029]/);
    expect(JSON.parse(json)).toEqual(value);
  });
  it('percent-encodes path segments so a path cannot become a scheme, query or fragment', () => {
    expect(relativeUrl('screenshots/home page #1?.png')).toBe('screenshots/home%20page%20%231%3F.png');
    expect(relativeUrl('javascript:alert(1)')).toBe('javascript%3Aalert(1)');
  });
  it('strips ANSI colour and cursor sequences', () => {
    expect(stripAnsi('\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok\x1b[2K')).toBe('red ok');
  });
});
