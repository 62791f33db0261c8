import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PNG } from 'pngjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { generateReport } from '../../src/report/generate.js';
import { buildReportsDir, SNAPSHOT_SIZE, XSS_NAME } from '../fixtures/report/build-reports-dir.js';

// Debian's chromium, driven by playwright-core; no downloads, no sandbox (root in CI).
const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
};
/** Where the screenshot artifact of the report is kept (git-ignored reports/ of the project). */
const ARTIFACTS_DIR = resolve(process.env.MACVM_REPORTS_DIR ?? 'reports');

interface PageWatch {
  errors: string[];
  dialogs: string[];
  remoteRequests: string[];
}

async function openReport(browser: Browser, file: string, hash = ''): Promise<{ page: Page; watch: PageWatch }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1 });
  const watch: PageWatch = { errors: [], dialogs: [], remoteRequests: [] };
  page.on('pageerror', (error) => watch.errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') watch.errors.push(message.text());
  });
  page.on('dialog', (dialog) => {
    watch.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  page.on('request', (request) => {
    if (!request.url().startsWith('file:')) watch.remoteRequests.push(request.url());
  });
  await page.goto(`file://${file}${hash}`);
  await page.waitForSelector('html[data-rendered="true"]');
  return { page, watch };
}

/** Opens a test's details (failed tests already are: clicking would close them). */
async function openTest(row: ReturnType<Page['locator']>): Promise<void> {
  const isOpen = await row.evaluate((node) => Boolean(node.closest('details')?.open));
  if (!isOpen) await row.click();
}

/** RGBA of one pixel of an element screenshot. */
async function pixel(page: Page, selector: string, x: number, y: number): Promise<[number, number, number]> {
  const png = PNG.sync.read(await page.locator(selector).screenshot());
  const i = (y * png.width + x) * 4;
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
}

describe('the HTML report in chromium', () => {
  let dir: string;
  let run: RunResult;
  let browser: Browser;
  let html: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-report-browser-'));
    run = await buildReportsDir(dir);
    html = (await generateReport({ reportsDir: dir })).html;
    browser = await chromium.launch(CHROMIUM);
  });
  afterAll(async () => {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('opens from file:// with no network, no script errors, and hostile names shown as text', async () => {
    const { page, watch } = await openReport(browser, html);
    const hostile = page.locator('.test-row .name', { hasText: XSS_NAME });
    await expect.poll(() => hostile.count()).toBe(1);
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    await openTest(hostile);
    await expect.poll(() => page.locator('.error-box .message', { hasText: '<script>alert(2)</script>' }).count()).toBe(1);
    expect(await page.locator('script:not([type]):not([id])').count()).toBe(1);
    expect(watch).toEqual({ errors: [], dialogs: [], remoteRequests: [] });
    await page.close();
  });

  it('opens on the failures: failed suites first, failed tests open, benchmarks after the tests', async () => {
    const { page, watch } = await openReport(browser, html);
    const suiteStatuses = await page.locator('section.suite').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-status')));
    const firstPassing = suiteStatuses.indexOf('passed');
    expect(suiteStatuses.slice(0, firstPassing).length).toBeGreaterThan(0);
    expect(suiteStatuses.slice(firstPassing).includes('failed')).toBe(false);
    const failedOpen = await page.locator('details.test[data-status="failed"]').evaluateAll((nodes) => nodes.map((n) => (n as HTMLDetailsElement).open));
    expect(failedOpen.length).toBeGreaterThan(0);
    expect(failedOpen.every(Boolean)).toBe(true);
    expect(await page.locator('details.test[data-status="failed"] .error-box').count()).toBe(failedOpen.length);
    const order = await page.evaluate(() => {
      const tests = document.querySelector('section.suite');
      const bench = document.getElementById('benchmarks');
      return tests && bench ? Boolean(tests.compareDocumentPosition(bench) & Node.DOCUMENT_POSITION_FOLLOWING) : 'missing';
    });
    expect(order).toBe(true);
    expect(watch.errors).toEqual([]);
    await page.close();
  });

  it('filters to failures and links the filtered view through the URL hash', async () => {
    const { page, watch } = await openReport(browser, html);
    const allRows = await page.locator('[data-test-id]').count();
    expect(allRows).toBe(run.totals.tests);
    await page.click('.filter[data-status="failed"]');
    expect(new URL(page.url()).hash).toBe('#?status=failed');
    const statuses = await page.locator('[data-test-id]').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-status')));
    expect(statuses).toEqual(['failed', 'failed']);
    expect(await page.getAttribute('.filter[data-status="failed"]', 'aria-pressed')).toBe('true');
    // The suite whose VM never booted is a failure too, shown with its error and console tail (collapsed).
    const broken = page.locator('section.suite', { hasText: 'boots a broken image' });
    expect(await broken.locator('.error-box .code').textContent()).toBe('MACVM_DEADLINE_EXCEEDED');
    const tail = broken.locator('details.console-tail');
    expect(await tail.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
    await tail.locator('summary').click();
    expect(await tail.locator('pre').innerText()).toContain('Kernel panic - not syncing');
    // Same hash in a fresh page gives the same view.
    const second = await openReport(browser, html, '#?status=flaky');
    expect(await second.page.locator('[data-test-id]').evaluateAll((nodes) => nodes.map((n) => n.textContent))).toEqual([expect.stringContaining('survives a reboot')]);
    expect(await second.page.getAttribute('.filter[data-status="flaky"]', 'aria-pressed')).toBe('true');
    expect([...watch.errors, ...second.watch.errors]).toEqual([]);
    await second.page.close();
    await page.close();
  });

  it('searches by name, combined with the status filter', async () => {
    const { page } = await openReport(browser, html);
    await page.fill('#search', 'REBOOT');
    await expect.poll(() => page.url()).toContain('q=REBOOT');
    await expect.poll(() => page.locator('[data-test-id]').count()).toBe(1);
    expect(await page.locator('[data-test-id]').textContent()).toContain('survives a reboot');
    // A suite-name hit shows that suite's tests; with a status filter only its matching ones.
    await page.fill('#search', 'ssh provider');
    await expect.poll(() => page.locator('[data-test-id]').count()).toBe(2);
    await page.click('.filter[data-status="skipped"]');
    await expect.poll(() => page.locator('#suites .empty').textContent()).toBe('No tests match this filter.');
    expect(await page.textContent('#shown')).toBe('0 tests in 0 suites');
    await page.close();
  });

  it('shows a snapshot mismatch in all five views, and the slider moves by keyboard and mouse', async () => {
    const { page, watch } = await openReport(browser, html, '#?status=failed');
    await openTest(page.locator('.test-row:has-text("matches the login snapshot")'));
    const snap = page.locator('.snap[data-snapshot="login"]');
    const shown = async () =>
      snap.locator('.snap-view img').evaluateAll((imgs) =>
        (imgs as HTMLImageElement[]).map((img) => ({ src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth, lazy: img.loading })),
      );
    await expect.poll(shown).toEqual([{ src: 'snapshots/login/diff.png', loaded: SNAPSHOT_SIZE.width, lazy: 'lazy' }]);
    expect(await snap.locator('[role=tab][aria-selected=true]').textContent()).toBe('Diff');
    await snap.locator('[role=tab][data-view=actual]').click();
    await expect.poll(shown).toEqual([{ src: 'snapshots/login/actual.png', loaded: SNAPSHOT_SIZE.width, lazy: 'lazy' }]);
    // Tabs follow the arrow keys too.
    await snap.locator('[role=tab][data-view=actual]').press('ArrowRight');
    expect(await snap.locator('[role=tab][aria-selected=true]').textContent()).toBe('Expected');
    await expect.poll(shown).toEqual([{ src: 'snapshots/login/expected.png', loaded: SNAPSHOT_SIZE.width, lazy: 'lazy' }]);
    await snap.locator('[role=tab][data-view=side]').click();
    await expect.poll(async () => (await shown()).map((i) => [i.src, i.loaded])).toEqual([
      ['snapshots/login/expected.png', SNAPSHOT_SIZE.width],
      ['snapshots/login/actual.png', SNAPSHOT_SIZE.width],
    ]);

    await snap.locator('[role=tab][data-view=slider]').click();
    const over = snap.locator('.slider-frame img.over');
    const range = snap.locator('input[type=range]');
    const clip = () => over.evaluate((img) => getComputedStyle(img).clipPath);
    await expect.poll(shown).toHaveLength(2);
    expect(await clip()).toBe('inset(0px 50% 0px 0px)');
    // The red box (x 100–140, y 30–70) exists only in the actual image; at 50 % it is on the expected side.
    expect(await pixel(page, '.slider-frame', 120, 50)).toEqual([255, 255, 255]);
    await range.focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight');
    expect(await range.inputValue()).toBe('55');
    expect(await clip()).toBe('inset(0px 45% 0px 0px)');
    await page.keyboard.press('End');
    expect(await clip()).toBe('inset(0px 0% 0px 0px)');
    expect(await pixel(page, '.slider-frame', 120, 50)).toEqual([220, 30, 30]);
    // Dragging on the picture moves the same control.
    const box = (await snap.locator('.slider-frame').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height / 2, { steps: 4 });
    await page.mouse.up();
    expect(await range.inputValue()).toBe('25');
    expect(await clip()).toBe('inset(0px 75% 0px 0px)');
    expect(await pixel(page, '.slider-frame', 120, 50)).toEqual([255, 255, 255]);
    expect(await pixel(page, '.slider-frame', 10, 50)).toEqual([30, 90, 200]);
    const divider = await snap.locator('.divider').boundingBox();
    expect(Math.round(divider!.x + divider!.width / 2 - box.x)).toBe(Math.round(box.width * 0.25));

    await mkdir(ARTIFACTS_DIR, { recursive: true });
    // From the top, so the sticky filter bar sits where a reader sees it.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'report-screenshot.png'), fullPage: true });
    const kept = PNG.sync.read(await readFile(join(ARTIFACTS_DIR, 'report-screenshot.png')));
    expect(kept.width).toBe(1200);
    expect(watch.errors).toEqual([]);
    await page.close();
  });

  it('shows the bench table and a history chart per workload', async () => {
    const { page } = await openReport(browser, html);
    const rows = page.locator('[data-testid="bench-table"] tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.nth(0).innerText()).toMatch(/gzip 10 MiB[\s\S]*4\.71×[\s\S]*slower/);
    const charts = page.locator('figure.chart svg');
    expect(await charts.count()).toBe(2);
    const circles = await charts.nth(0).locator('circle').count();
    expect(circles).toBe(6);
    const size = await charts.nth(0).boundingBox();
    expect(size!.width).toBeGreaterThan(200);
    await page.close();
  });

  it('renders a large run in batches as it scrolls, and every test is reachable', async () => {
    const big = await mkdtemp(join(tmpdir(), 'macvm-report-big-'));
    try {
      const suites = Array.from({ length: 300 }, (_, s) => ({
        id: `s${s}`,
        name: `suite ${s}`,
        file: `specs/s${s}.spec.ts`,
        status: 'passed',
        durationMs: 10,
        tests: Array.from({ length: 4 }, (_, t) => ({ id: `s${s}t${t}`, name: `test ${s}.${t}`, status: s === 299 && t === 3 ? 'failed' : 'passed', durationMs: 1, error: s === 299 && t === 3 ? { message: 'last one' } : undefined })),
      }));
      await writeFile(join(big, 'results.json'), JSON.stringify({ schema: 1, suites }));
      const { html: bigHtml } = await generateReport({ reportsDir: big });
      const { page, watch } = await openReport(browser, bigHtml);
      const first = await page.locator('[data-test-id]').count();
      expect(first).toBeLessThan(1200);
      expect(first).toBeGreaterThan(0);
      for (let i = 0; i < 40 && (await page.locator('[data-test-id]').count()) < 1200; i++) {
        await page.locator('#more').scrollIntoViewIfNeeded().catch(() => undefined);
        await page.waitForTimeout(50);
      }
      expect(await page.locator('[data-test-id]').count()).toBe(1200);
      expect(await page.locator('#more').count()).toBe(0);
      // Filtering a big run finds the one failure at the very end at once.
      await page.click('.filter[data-status="failed"]');
      expect(await page.locator('[data-test-id]').count()).toBe(1);
      expect(watch.errors).toEqual([]);
      await page.close();
    } finally {
      await rm(big, { recursive: true, force: true });
    }
  });
});

// The lead's check on a real run: MACVM_REPORT_FROM=reports npx vitest run test/integration/report-browser.test.ts
describe.skipIf(!process.env.MACVM_REPORT_FROM)('the report of a real run (MACVM_REPORT_FROM)', () => {
  it('generates from it and shows every test with no script errors', async () => {
    const reportsDir = resolve(process.env.MACVM_REPORT_FROM!);
    const { html } = await generateReport({ reportsDir });
    const results = JSON.parse(await readFile(join(reportsDir, 'results.json'), 'utf8')) as RunResult;
    const browser = await chromium.launch(CHROMIUM);
    try {
      const { page, watch } = await openReport(browser, html);
      const total = results.suites.reduce((n, s) => n + s.tests.length, 0);
      for (let i = 0; i < 200 && (await page.locator('[data-test-id]').count()) < total; i++) {
        await page.locator('#more').scrollIntoViewIfNeeded().catch(() => undefined);
      }
      expect(await page.locator('[data-test-id]').count()).toBe(total);
      for (const details of await page.locator('details.test').all()) await openTest(details.locator('summary'));
      await page.screenshot({ path: join(reportsDir, 'report-screenshot.png'), fullPage: true });
      expect(watch).toEqual({ errors: [], dialogs: [], remoteRequests: [] });
    } finally {
      await browser.close();
    }
  });
});
