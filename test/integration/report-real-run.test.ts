/**
 * The HTML report of a REAL run of the example specs: specs/ copied as they are, with the
 * console baseline deliberately altered so one snapshot mismatches, run through `macvm test`
 * on real qemu guests; then chromium opens the report from file://, filters to failures,
 * opens the mismatch and moves the slider.
 */
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/shared/results.js';
import { REPO_ROOT, runMacvm } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
};

describe('the report of a real run of specs/', () => {
  let testHome: TestHome;
  let work: string;
  let reports: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    testHome = await createTestHome();
    // Inside the repo, so the copied specs resolve `macvm` to this package.
    work = join(REPO_ROOT, '.macvm-test-tmp', `real-run-${process.pid}`);
    reports = join(work, 'reports');
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    await cp(join(REPO_ROOT, 'specs'), join(work, 'specs'), { recursive: true });
    // Paint a red block into the committed baseline: the run must report a mismatch.
    const baseline = join(work, 'specs', '__image_snapshots__', 'console-screenshot.spec.ts', 'console-banner.png');
    const png = PNG.sync.read(await readFile(baseline));
    for (let y = 100; y < 160; y++) {
      for (let x = 300; x < 420; x++) png.data.set([220, 30, 30, 255], (y * png.width + x) * 4);
    }
    await writeFile(baseline, PNG.sync.write(png));
  });

  afterAll(async () => {
    await browser?.close();
    await testHome?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('shows the failure, the snapshot views and a working slider', async () => {
    const { code, stdout, stderr } = await runMacvm(['test', join(work, 'specs')], {
      env: { MACVM_HOME: testHome.home, MACVM_REPORTS_DIR: reports },
    }).done;
    expect(code, stdout + stderr).toBe(1);
    const result = JSON.parse(await readFile(join(reports, 'results.json'), 'utf8')) as RunResult;
    // Only the altered snapshot fails; every other example passes.
    expect(result.totals.failed).toBe(1);
    expect(result.totals.passed).toBe(result.totals.tests - 1);
    // Every suite shows its VM and console log, the benchMacVM one included.
    for (const suite of result.suites) expect(suite.vm?.consoleLog, suite.name).toMatch(/console\.log$/);
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });

    browser = await chromium.launch(CHROMIUM);
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`file://${join(reports, 'index.html')}`);
    await page.waitForSelector('html[data-rendered="true"]');
    expect(await page.locator('[data-test-id]').count()).toBe(result.totals.tests);

    await page.click('.filter[data-status="failed"]');
    await expect.poll(() => page.locator('[data-test-id]').count()).toBe(1);
    // Failed tests open with their error; open it by hand only if the report did not.
    const row = page.locator('.test-row:has-text("shows what the guest printed")');
    if (!(await row.evaluate((node) => Boolean(node.closest('details')?.open)))) await row.click();
    const snap = page.locator('.snap[data-snapshot="console-banner"]');
    await expect.poll(() => snap.count()).toBe(1);
    const diff = snap.locator('.snap-view img');
    await expect.poll(() => diff.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBe(720);

    await snap.locator('[role=tab][data-view=slider]').click();
    const over = snap.locator('.slider-frame img.over');
    const clip = () => over.evaluate((img) => getComputedStyle(img).clipPath);
    expect(await clip()).toBe('inset(0px 50% 0px 0px)');
    await snap.locator('input[type=range]').focus();
    await page.keyboard.press('Home');
    expect(await clip()).toBe('inset(0px 100% 0px 0px)');
    await page.keyboard.press('End');
    expect(await clip()).toBe('inset(0px 0% 0px 0px)');
    // Kept as an artifact of the project's own run (the work dir goes away).
    await mkdir(join(REPO_ROOT, 'reports'), { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(REPO_ROOT, 'reports', 'report-real-run.png'), fullPage: true });
    // The example benchmark's run is in the report too, with its table.
    expect(await page.locator('[data-testid="bench-table"] tbody tr').count()).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  });
});
