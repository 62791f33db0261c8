/**
 * How the report copes with a large run: a synthetic 500-suite / 5000-test results.json
 * (2 % failing with stacks and console tails, 40 snapshot mismatches, bench history of
 * 60 runs). Prints generation time, index.html / junit.xml sizes, and in Debian's
 * chromium the time to first render, to filter to failures, and to search.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { generateReport } from '../src/report/generate.js';
import type { RunResult, SuiteResult } from '../src/shared/results.js';
import { buildReportsDir } from '../test/fixtures/report/build-reports-dir.js';

const SUITES = 500;
const TESTS_PER_SUITE = 10;
const SNAPSHOTS = 40;

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-report-'));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    await buildReportsDir(dir, { historyRuns: 60 }); // real PNGs and bench files; results.json replaced below
    await writeFile(join(dir, 'results.json'), JSON.stringify(syntheticRun()));

    const generation: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      await generateReport({ reportsDir: dir });
      generation.push(performance.now() - start);
    }
    const htmlBytes = (await stat(join(dir, 'index.html'))).size;
    const junitBytes = (await stat(join(dir, 'junit.xml'))).size;
    console.log(`input: ${SUITES} suites, ${SUITES * TESTS_PER_SUITE} tests, ${SNAPSHOTS} snapshot mismatches, 60 bench runs`);
    console.log(`generateReport          median ${median(generation).toFixed(0)} ms  (min ${Math.min(...generation).toFixed(0)}, max ${Math.max(...generation).toFixed(0)}; 5 runs)`);
    console.log(`index.html              ${(htmlBytes / 1024).toFixed(0)} KiB`);
    console.log(`junit.xml               ${(junitBytes / 1024).toFixed(0)} KiB`);

    const firstRender: number[] = [];
    const loaded: number[] = [];
    const scriptWork: number[] = [];
    const filter: number[] = [];
    const search: number[] = [];
    let rows = 0;
    for (let i = 0; i < 5; i++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`file://${join(dir, 'index.html')}`, { waitUntil: 'load' });
      await page.waitForSelector('html[data-rendered="true"]');
      const timing = await page.evaluate(() => ({
        rendered: performance.getEntriesByName('macvm-rendered')[0]?.startTime ?? Number.NaN,
        scriptStart: performance.getEntriesByName('macvm-script-start')[0]?.startTime ?? Number.NaN,
        load: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).loadEventEnd,
        rows: document.querySelectorAll('[data-test-id]').length,
      }));
      firstRender.push(timing.rendered);
      scriptWork.push(timing.rendered - timing.scriptStart);
      loaded.push(timing.load);
      rows = timing.rows;
      filter.push(
        await page.evaluate(() => {
          const start = performance.now();
          (document.querySelector('.filter[data-status="failed"]') as HTMLButtonElement).click();
          return performance.now() - start;
        }),
      );
      // Search is debounced by 120 ms; measure the render it triggers, not the debounce.
      search.push(
        await page.evaluate(
          () =>
            new Promise<number>((done) => {
              const box = document.getElementById('search') as HTMLInputElement;
              box.value = 'suite 4';
              box.dispatchEvent(new Event('input'));
              setTimeout(() => {
                const start = performance.now();
                window.dispatchEvent(new HashChangeEvent('hashchange'));
                done(performance.now() - start);
              }, 200);
            }),
        ),
      );
      await page.close();
    }
    // The same page load for the 4-suite fixture report: what any page costs on this host.
    const smallDir = join(dir, 'small');
    await buildReportsDir(smallDir, { historyRuns: 60 });
    await generateReport({ reportsDir: smallDir });
    const smallRender: number[] = [];
    for (let i = 0; i < 5; i++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`file://${join(smallDir, 'index.html')}`, { waitUntil: 'load' });
      await page.waitForSelector('html[data-rendered="true"]');
      smallRender.push(await page.evaluate(() => performance.getEntriesByName('macvm-rendered')[0]?.startTime ?? Number.NaN));
      await page.close();
    }
    console.log(`chromium first render   median ${median(smallRender).toFixed(0)} ms for the 4-suite fixture report (baseline)`);
    console.log(`chromium first render   median ${median(firstRender).toFixed(0)} ms after navigation start (${rows} of ${SUITES * TESTS_PER_SUITE} rows in the first batch)`);
    console.log(`  of which JSON + render median ${median(scriptWork).toFixed(0)} ms (the rest is reading and parsing the HTML)`);
    console.log(`chromium load event     median ${median(loaded).toFixed(0)} ms`);
    console.log(`filter to failed        median ${median(filter).toFixed(1)} ms`);
    console.log(`re-render after search  median ${median(search).toFixed(1)} ms`);
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function syntheticRun(): RunResult {
  let snapshotsLeft = SNAPSHOTS;
  const suites: SuiteResult[] = Array.from({ length: SUITES }, (_, s) => {
    const tests = Array.from({ length: TESTS_PER_SUITE }, (_, t) => {
      const failed = (s * TESTS_PER_SUITE + t) % 50 === 7;
      const snapshot = failed && snapshotsLeft-- > 0;
      return {
        id: `s${s}-t${t}`,
        name: `does thing ${t} in the guest`,
        fullName: `suite ${s} › does thing ${t} in the guest`,
        status: failed ? ('failed' as const) : t === 9 ? ('skipped' as const) : t === 8 && s % 7 === 0 ? ('flaky' as const) : ('passed' as const),
        durationMs: 50 + ((s * 31 + t * 17) % 900),
        retries: t === 8 && s % 7 === 0 ? 1 : 0,
        error: failed
          ? {
              message: `expected exit code 0, got 1 (suite ${s} test ${t})`,
              stack: `AssertionError: expected exit code 0\n${'    at frame (specs/x.spec.ts:10:5)\n'.repeat(12)}`,
              consoleTail: Array.from({ length: 30 }, (_, l) => `[ ${l}.000] guest console line ${l}`).join('\n'),
            }
          : undefined,
        artifacts: snapshot
          ? [
              {
                kind: 'snapshot' as const,
                name: 'login',
                path: 'snapshots/login/actual.png',
                snapshot: { name: `login-${s}`, expected: 'snapshots/login/expected.png', actual: 'snapshots/login/actual.png', diff: 'snapshots/login/diff.png', diffPixels: 1600, diffRatio: 0.1, width: 160, height: 100 },
              },
            ]
          : [],
      };
    });
    return {
      id: `suite-${s}`,
      name: `suite ${s}`,
      file: `specs/area-${s % 20}/suite-${s}.spec.ts`,
      status: tests.some((t) => t.status === 'failed') ? 'failed' : 'passed',
      durationMs: 3500 + s,
      vm: { vmId: `macvm-${s.toString(16).padStart(8, '0')}`, provider: 'qemu', image: 'linux-test', cpus: 2, memoryMiB: 1024, bootMs: 1800, readyMs: 3400, consoleLog: `console/${s}.log` },
      tests,
      artifacts: [],
    };
  });
  const tests = suites.flatMap((s) => s.tests);
  const count = (status: string) => tests.filter((t) => t.status === status).length;
  return {
    schema: 1,
    runId: 'bench-synthetic',
    startedAt: new Date().toISOString(),
    durationMs: 3_600_000,
    host: { platform: 'linux', arch: 'x64', cpus: 2, memoryMiB: 24_576, node: process.version, osRelease: '' },
    provider: 'qemu',
    totals: { suites: suites.length, tests: tests.length, passed: count('passed'), failed: count('failed'), skipped: count('skipped'), flaky: count('flaky') },
    suites,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
