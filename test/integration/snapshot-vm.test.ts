/**
 * Visual snapshots against a real VM display: the linux-test guest under qemu with `-vga std`,
 * known text written to its VGA console (/dev/tty1), captured with QMP screendump until stable,
 * and compared through the real `toMatchImageSnapshot` matcher with baselines in a temp dir.
 * One VM serves the whole file; every test draws the screen it needs.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import '../../src/fixtures/image-snapshot.js';
import { captureStable } from '../../src/guest/screen.js';
import type { Artifact } from '../../src/shared/results.js';
import { setSnapshotEnvironment, type SnapshotEnvironment } from '../../src/snapshot/environment.js';
import { decodePng } from '../../src/snapshot/png.js';
import { setReportsDir } from '../../src/snapshot/settings.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { startMacVM } from '../../src/machine/start.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';
import { macvmErrorOf as failure } from '../support/macvm-error.js';

// VGA text mode: 80×25 cells of 9×16 pixels on a 720×400 picture. Row 10 (1-based) spans y 144–159.
const PRICE_ROW = { x: 0, y: 144, width: 720, height: 16 };

let testHome: TestHome;
let vm: MacVM;
let dir: string;
let environment: SnapshotEnvironment;

beforeAll(async () => {
  testHome = await createTestHome();
  dir = await mkdtemp(join(tmpdir(), 'macvm-snapshot-vm-'));
  setReportsDir(join(dir, 'reports'));
  vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', display: true, deadline: 120_000 });
  // What withMacVM records for the suite's VM.
  environment = { provider: vm.facts.provider, guestOs: vm.facts.os, guestBuild: vm.facts.imageFacts.kernel ?? vm.facts.image, gpu: 'qemu VGA (std)' };
  setSnapshotEnvironment(environment);
});

afterAll(async () => {
  setSnapshotEnvironment(undefined);
  setReportsDir(undefined);
  await vm?.dispose();
  expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  await testHome?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  vi.stubEnv('CI', '');
  // vitest itself sets its snapshot mode to 'none' when it sees CI, which the matcher honours;
  // pin the local default here so these tests mean the same in CI and on a laptop.
  vi.stubEnv('MACVM_UPDATE_SNAPSHOTS', 'missing');
  return () => vi.unstubAllEnvs();
});

/** Clears the console and writes two known lines (cursor hidden), then captures until stable. */
async function screen(price: string): Promise<Buffer> {
  await vm.writeFile('/tmp/screen.txt', `\x1bc\x1b[?25l\x1b[5;10HMACVM SNAPSHOT TEST\x1b[10;10Hprice: ${price}`);
  await vm.exec('cat /tmp/screen.txt > /dev/tty1');
  return captureStable(() => vm.screenshot(), { timeoutMs: 10_000, intervalMs: 100 });
}

const template = (test: string) => join(dir, test, '{name}.png');
const baseline = (test: string, name = 'console') => join(dir, test, `${name}.png`);


describe('snapshots of a real VM display', () => {
  it('records a baseline of the console and matches a fresh capture of the same text', async () => {
    const first = await screen('10.00');
    const pixels = decodePng(first);
    expect([pixels.width, pixels.height]).toEqual([720, 400]);
    // The text is really there: some pixels are lit, most are the black background.
    let lit = 0;
    for (let i = 0; i < pixels.data.length; i += 4) if (pixels.data[i]! > 100) lit++;
    expect(lit).toBeGreaterThan(500);
    expect(lit).toBeLessThan(720 * 400 * 0.1);

    await expect(first).toMatchImageSnapshot({ name: 'console', pathTemplate: template('match') });
    expect(existsSync(baseline('match'))).toBe(true);
    expect(JSON.parse(await readFile(`${baseline('match')}.json`, 'utf8'))).toMatchObject({ provider: 'qemu', guestOs: 'linux', gpu: 'qemu VGA (std)' });
    await expect(await screen('10.00')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('match'), update: 'none' });
  });

  it('reports a changed price as a mismatch with expected, actual and diff artifacts', async ({ task }) => {
    await expect(await screen('10.00')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('mismatch') });
    const error = await failure(expect(await screen('12.50')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('mismatch') }));
    expect(error.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect(error.message).toMatch(/Image "console" differs from its baseline: \d+ pixels \(\d+\.\d+ %\) beyond threshold 0.1 \(allowed: 0 pixels\)/);
    const artifact = ((task.meta as { macvmArtifacts?: Artifact[] }).macvmArtifacts ?? []).find((a) => a.snapshot?.diff)!;
    expect(artifact.snapshot!.diffPixels).toBeGreaterThan(0);
    for (const path of [artifact.snapshot!.expected!, artifact.snapshot!.actual, artifact.snapshot!.diff!]) {
      const image = decodePng(await readFile(join(dir, 'reports', path)));
      expect([image.width, image.height]).toEqual([720, 400]);
    }
  });

  it('passes the changed price once its row is masked', async () => {
    await expect(await screen('10.00')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('masks') });
    await expect(await screen('12.50')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('masks'), masks: [PRICE_ROW], update: 'none' });
    // A mask elsewhere does not hide the change.
    const error = await failure(expect(await screen('12.50')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('masks'), masks: [{ x: 0, y: 64, width: 720, height: 16 }], update: 'none' }));
    expect(error.code).toBe('MACVM_SNAPSHOT_MISMATCH');
  });

  it("follows each update mode: 'none' refuses a missing baseline, 'changed' rewrites a mismatch, 'all' rewrites a match", async () => {
    const ten = await screen('10.00');
    expect((await failure(expect(ten).toMatchImageSnapshot({ name: 'console', pathTemplate: template('modes'), update: 'none' }))).code).toBe('MACVM_SNAPSHOT_MISSING');
    expect(existsSync(baseline('modes'))).toBe(false);

    await expect(ten).toMatchImageSnapshot({ name: 'console', pathTemplate: template('modes'), update: 'missing' });
    const twelve = await screen('12.50');
    expect((await failure(expect(twelve).toMatchImageSnapshot({ name: 'console', pathTemplate: template('modes'), update: 'missing' }))).code).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect((await readFile(baseline('modes'))).equals(ten)).toBe(true);

    await expect(twelve).toMatchImageSnapshot({ name: 'console', pathTemplate: template('modes'), update: 'changed' });
    expect((await readFile(baseline('modes'))).equals(twelve)).toBe(true);
    await expect(await screen('12.50')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('modes'), update: 'none' });

    const before = JSON.parse(await readFile(`${baseline('modes')}.json`, 'utf8')).takenAt as string;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await expect(twelve).toMatchImageSnapshot({ name: 'console', pathTemplate: template('modes'), update: 'all' });
    expect(JSON.parse(await readFile(`${baseline('modes')}.json`, 'utf8')).takenAt).not.toBe(before);
  });

  it('refuses a truncated baseline with MACVM_SNAPSHOT_CORRUPT naming the file, and leaves it as it was', async () => {
    const ten = await screen('10.00');
    await expect(ten).toMatchImageSnapshot({ name: 'console', pathTemplate: template('corrupt') });
    const truncated = ten.subarray(0, Math.floor(ten.length / 2));
    await writeFile(baseline('corrupt'), truncated);
    const { mtimeMs } = await stat(baseline('corrupt'));
    const error = await failure(expect(ten).toMatchImageSnapshot({ name: 'console', pathTemplate: template('corrupt') }));
    expect(error.code).toBe('MACVM_SNAPSHOT_CORRUPT');
    expect(error.message).toContain(baseline('corrupt'));
    expect((await readFile(baseline('corrupt'))).equals(truncated)).toBe(true);
    expect((await stat(baseline('corrupt'))).mtimeMs).toBe(mtimeMs);
  });

  it('lets the pixels decide across environments, naming the environment difference', async () => {
    const ten = await screen('10.00');
    await expect(ten).toMatchImageSnapshot({ name: 'console', pathTemplate: template('env') });
    const elsewhere: SnapshotEnvironment = { guestBuild: '6.12.0-31-cloud-amd64', gpu: 'virtio-gpu' };
    // A new kernel build that draws the same console passes.
    await expect(await screen('10.00')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('env'), environment: elsewhere });
    // Different pixels fail as pixels, with the environment named as the likely cause.
    const error = await failure(expect(await screen('12.50')).toMatchImageSnapshot({ name: 'console', pathTemplate: template('env'), environment: elsewhere }));
    expect(error.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect(error.message).toContain(`baseline taken on linux (${environment.guestBuild}) / qemu VGA (std) / qemu`);
    expect(error.message).toContain('differs in guestBuild, gpu');
    // strictEnvironment refuses to compare at all.
    const strict = await failure(expect(ten).toMatchImageSnapshot({ name: 'console', pathTemplate: template('env'), environment: elsewhere, strictEnvironment: true }));
    expect(strict.code).toBe('MACVM_SNAPSHOT_ENV_MISMATCH');
    expect(strict.message).not.toMatch(/differs from its baseline/);
    expect((await readFile(baseline('env'))).equals(ten)).toBe(true);
  });
});
