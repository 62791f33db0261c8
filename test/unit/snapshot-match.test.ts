import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodePng, type RgbaImage } from '../../src/snapshot/png.js';
import { matchImageSnapshot, type ImageSnapshotOptions, type SnapshotRun } from '../../src/snapshot/match.js';
import type { SnapshotEnvironment } from '../../src/snapshot/environment.js';
import type { UpdateMode } from '../../src/snapshot/update-mode.js';
import { writeFileAtomic } from '../../src/util/atomic-write.js';
import { syntheticPage } from '../fixtures/snapshot/synthetic-page.js';
import { macvmErrorOf as rejected } from '../support/macvm-error.js';

const SONOMA_144: SnapshotEnvironment = { provider: 'vz', guestOs: 'macOS 14.4', guestBuild: '23E214', gpu: 'Apple Paravirtual device', display: { width: 1920, height: 1080, scale: 2 } };
const SONOMA_145: SnapshotEnvironment = { ...SONOMA_144, guestOs: 'macOS 14.5', guestBuild: '23F79' };
// The real-world case: Debian's cloud kernel moved from -56 to -57, the VGA text console did not change.
const DEBIAN_56: SnapshotEnvironment = { provider: 'qemu', guestOs: 'linux', guestBuild: '6.1.0-56-cloud-amd64', gpu: 'qemu VGA (std)' };
const DEBIAN_57: SnapshotEnvironment = { ...DEBIAN_56, guestBuild: '6.1.0-57-cloud-amd64' };

const page = encodePng(syntheticPage({ width: 320, height: 200, seed: 5 }));
const pageChanged = encodePng(syntheticPage({ width: 320, height: 200, seed: 5, changes: [{ x: 40, y: 60, width: 20, height: 10 }] }));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-snapshot-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(update: UpdateMode, extra: Partial<SnapshotRun> = {}): SnapshotRun {
  return {
    specPath: join(dir, 'specs', 'cart.spec.ts'),
    root: dir,
    name: 'cart',
    reportsDir: join(dir, 'reports'),
    update,
    environment: SONOMA_144,
    now: () => new Date('2024-05-01T10:00:00Z'),
    ...extra,
  };
}
const baselinePath = () => join(dir, 'specs', '__image_snapshots__', 'cart.spec.ts', 'cart.png');
const artifact = (suffix: string) => join(dir, 'reports', 'artifacts', 'snapshots', 'specs', 'cart.spec.ts', `cart-${suffix}.png`);

/** The baseline's bytes and its sidecar's text, to prove a run left them alone. */
async function baselineFiles(): Promise<{ png: Buffer; sidecar: string }> {
  return { png: await readFile(baselinePath()), sidecar: await readFile(`${baselinePath()}.json`, 'utf8') };
}

async function check(input: unknown, update: UpdateMode, options: ImageSnapshotOptions = {}, extra: Partial<SnapshotRun> = {}) {
  return matchImageSnapshot(input, options, run(update, extra));
}


describe('matchImageSnapshot', () => {
  it("writes a missing baseline and its environment sidecar in 'missing' mode, then matches it", async () => {
    const first = await check(page, 'missing');
    expect(first).toMatchObject({ pass: true, status: 'written', baselinePath: baselinePath() });
    expect((await readFile(baselinePath())).equals(page)).toBe(true);
    const sidecar = JSON.parse(await readFile(`${baselinePath()}.json`, 'utf8'));
    expect(sidecar).toEqual({ ...SONOMA_144, takenAt: '2024-05-01T10:00:00.000Z' });
    expect(first.artifact).toMatchObject({ kind: 'snapshot', snapshot: { name: 'cart', actual: 'artifacts/snapshots/specs/cart.spec.ts/cart-actual.png', width: 320, height: 200 } });
    expect(first.artifact!.snapshot!.diff).toBeUndefined();

    const second = await check(page.toString('base64'), 'missing');
    expect(second).toMatchObject({ pass: true, status: 'matched', compare: { method: 'bytes' } });
    expect(second.artifact).toBeUndefined();
  });

  it("fails a missing baseline with MACVM_SNAPSHOT_MISSING in 'none' mode and writes nothing there", async () => {
    const outcome = await check(page, 'none');
    expect(outcome.pass).toBe(false);
    expect(outcome.error?.code).toBe('MACVM_SNAPSHOT_MISSING');
    expect(existsSync(baselinePath())).toBe(false);
    expect(existsSync(artifact('actual'))).toBe(true);
  });

  it('reports a mismatch with the pixel count, ratio and three artifacts', async () => {
    await check(page, 'missing');
    const outcome = await check(pageChanged, 'missing', { maxDiffPixels: 100, maxDiffPixelRatio: 0.001 });
    expect(outcome.pass).toBe(false);
    expect(outcome.error?.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    const pixels = outcome.compare!.diffPixels;
    expect(pixels).toBeGreaterThan(64);
    expect(outcome.error!.message).toContain(`Image "cart" differs from its baseline: ${pixels.toLocaleString('en-US')} pixels (${((pixels / 64000) * 100).toFixed(2)} %) beyond threshold 0.1 (allowed: 64 pixels / 0.1 %).`);
    for (const kind of ['expected', 'actual', 'diff']) {
      expect(outcome.error!.message).toContain(artifact(kind));
      expect((await stat(artifact(kind))).size).toBeGreaterThan(0);
    }
    expect((await readFile(artifact('expected'))).equals(page)).toBe(true);
    expect(outcome.artifact!.snapshot).toMatchObject({ expected: 'artifacts/snapshots/specs/cart.spec.ts/cart-expected.png', diff: 'artifacts/snapshots/specs/cart.spec.ts/cart-diff.png', diffPixels: pixels });
    expect((await readFile(baselinePath())).equals(page)).toBe(true); // not touched
  });

  it('passes within maxDiffPixels and with the change masked', async () => {
    await check(page, 'missing');
    expect((await check(pageChanged, 'none', { maxDiffPixels: 1000 })).pass).toBe(true);
    expect((await check(pageChanged, 'none', { masks: [{ x: 30, y: 50, width: 40, height: 30 }] })).pass).toBe(true);
    expect((await check(pageChanged, 'none', { maxDiffPixels: 1000, maxDiffPixelRatio: 0.0001 })).pass).toBe(false);
  });

  it("rewrites only a mismatching baseline in 'changed' mode", async () => {
    await check(page, 'missing');
    const before = await stat(baselinePath());
    expect(await check(page, 'changed')).toMatchObject({ pass: true, status: 'matched' });
    expect((await stat(baselinePath())).mtimeMs).toBe(before.mtimeMs);
    const outcome = await check(pageChanged, 'changed');
    expect(outcome).toMatchObject({ pass: true, status: 'updated' });
    expect((await readFile(baselinePath())).equals(pageChanged)).toBe(true);
    expect(outcome.artifact!.snapshot!.expected).toBeDefined();
  });

  it("rewrites every compared baseline in 'all' mode", async () => {
    await check(page, 'missing');
    await writeFile(`${baselinePath()}.json`, JSON.stringify({ ...SONOMA_144, takenAt: 'long ago' }));
    expect(await check(page, 'all')).toMatchObject({ pass: true, status: 'updated' });
    expect(JSON.parse(await readFile(`${baselinePath()}.json`, 'utf8')).takenAt).toBe('2024-05-01T10:00:00.000Z');
  });

  it('reports a size change as a mismatch, not a crash', async () => {
    await check(page, 'missing');
    const outcome = await check(encodePng(syntheticPage({ width: 300, height: 200, seed: 5 })), 'missing');
    expect(outcome.error?.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect(outcome.error!.message).toContain('is 300×200 but its baseline is 320×200');
  });

  it.each(['missing', 'none'] as const)("refuses a truncated baseline in '%s' mode with MACVM_SNAPSHOT_CORRUPT and leaves it untouched", async (mode) => {
    await mkdir(join(dir, 'specs', '__image_snapshots__', 'cart.spec.ts'), { recursive: true });
    const truncated = page.subarray(0, page.length - 40);
    await writeFile(baselinePath(), truncated);
    const error = await rejected(check(pageChanged, mode));
    expect(error.code).toBe('MACVM_SNAPSHOT_CORRUPT');
    expect(error.message).toContain(baselinePath());
    expect((await readFile(baselinePath())).equals(truncated)).toBe(true);
  });

  it('refuses a baseline whose image data is corrupt (checksum) in missing mode', async () => {
    await check(page, 'missing');
    const corrupt = Buffer.from(page);
    corrupt[80] = corrupt[80]! ^ 0x55;
    await writeFile(baselinePath(), corrupt);
    expect((await rejected(check(pageChanged, 'missing'))).code).toBe('MACVM_SNAPSHOT_CORRUPT');
    expect((await readFile(baselinePath())).equals(corrupt)).toBe(true);
  });

  it("replaces a corrupt baseline on an explicit 'changed' update", async () => {
    await mkdir(join(dir, 'specs', '__image_snapshots__', 'cart.spec.ts'), { recursive: true });
    await writeFile(baselinePath(), 'not a png at all');
    expect(await check(page, 'changed')).toMatchObject({ pass: true, status: 'updated' });
    expect((await readFile(baselinePath())).equals(page)).toBe(true);
  });

  it('rejects input that is not a PNG with MACVM_PNG_INVALID', async () => {
    expect((await rejected(check(Buffer.from('<html>not an image</html>'.repeat(4)), 'missing'))).code).toBe('MACVM_PNG_INVALID');
  });

  it.each(['none', 'missing'] as const)("passes a baseline from another kernel build whose pixels match, with a note, in '%s' mode", async (mode) => {
    await check(page, 'missing', {}, { environment: DEBIAN_56 });
    const before = await baselineFiles();
    const outcome = await check(page, mode, {}, { environment: DEBIAN_57 });
    expect(outcome).toMatchObject({ pass: true, status: 'matched' });
    expect(outcome.error).toBeUndefined();
    const note = 'baseline from linux (6.1.0-56-cloud-amd64) / qemu VGA (std) / qemu, pixels match (differs in guestBuild)';
    expect(outcome.environmentNote).toBe(note);
    expect(outcome.artifact!.snapshot).toMatchObject({ environmentNote: note, actual: 'artifacts/snapshots/specs/cart.spec.ts/cart-actual.png', diffPixels: 0 });
    expect(outcome.artifact!.snapshot!.environmentMismatch).toBeUndefined();
    expect((await readFile(artifact('actual'))).equals(page)).toBe(true);
    // Neither the picture nor its sidecar is touched by a run that did not ask to update.
    const after = await baselineFiles();
    expect(after.png.equals(before.png)).toBe(true);
    expect(after.sidecar).toBe(before.sidecar);
  });

  it('passes across environments within the usual tolerance, and fails beyond it', async () => {
    await check(page, 'missing', {}, { environment: DEBIAN_56 });
    const within = await check(pageChanged, 'none', { maxDiffPixels: 1000 }, { environment: DEBIAN_57 });
    expect(within).toMatchObject({ pass: true, status: 'matched' });
    expect(within.environmentNote).toContain('differs in guestBuild');
    expect(within.artifact!.snapshot!.diffPixels).toBe(within.compare!.diffPixels);
    expect(within.compare!.diffPixels).toBeGreaterThan(0);
    const beyond = await check(pageChanged, 'none', { maxDiffPixels: 10 }, { environment: DEBIAN_57 });
    expect(beyond.error?.code).toBe('MACVM_SNAPSHOT_MISMATCH');
  });

  it('fails different pixels from another environment as a pixel mismatch that names the environment', async () => {
    await check(page, 'missing');
    const outcome = await check(pageChanged, 'missing', {}, { environment: SONOMA_145 });
    expect(outcome.pass).toBe(false);
    expect(outcome.error?.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    const message = outcome.error!.message;
    expect(message).toContain(`Image "cart" differs from its baseline: ${outcome.compare!.diffPixels.toLocaleString('en-US')} pixels`);
    expect(message).toContain('baseline taken on macOS 14.4 (23E214) / Apple Paravirtual device / vz / 1920×1080@2x, this run is macOS 14.5 (23F79)');
    expect(message).toContain('differs in guestOs, guestBuild');
    expect(outcome.error!.details).toMatchObject({ fields: ['guestOs', 'guestBuild'] });
    expect(outcome.artifact!.snapshot!.environmentMismatch).toContain('differs in guestOs, guestBuild');
    expect(outcome.artifact!.snapshot!.environmentNote).toBeUndefined();
    expect(outcome.artifact!.snapshot!.diff).toBe('artifacts/snapshots/specs/cart.spec.ts/cart-diff.png');
    expect((await stat(artifact('diff'))).size).toBeGreaterThan(0);
    expect((await readFile(baselinePath())).equals(page)).toBe(true); // not touched
    expect(JSON.parse(await readFile(`${baselinePath()}.json`, 'utf8')).guestBuild).toBe('23E214');
  });

  it('fails a size change from another environment as a mismatch that names the environment', async () => {
    await check(page, 'missing');
    const smaller = encodePng(syntheticPage({ width: 300, height: 200, seed: 5 }));
    const outcome = await check(smaller, 'missing', {}, { environment: { ...SONOMA_144, display: { width: 1280, height: 800, scale: 2 } } });
    expect(outcome.error?.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect(outcome.error!.message).toContain('is 300×200 but its baseline is 320×200');
    expect(outcome.error!.message).toContain('this run is macOS 14.4 (23E214) / Apple Paravirtual device / vz / 1280×800@2x (differs in display)');
    expect(outcome.artifact!.snapshot!.environmentMismatch).toContain('differs in display');
  });

  it('with strictEnvironment refuses to compare a baseline from another environment, as before', async () => {
    await check(page, 'missing', {}, { environment: DEBIAN_56 });
    const before = await baselineFiles();
    // The same pixels pass when the pixels decide...
    expect(await check(page, 'missing', {}, { environment: DEBIAN_57 })).toMatchObject({ pass: true, status: 'matched' });
    // ...and are not even compared under strictEnvironment.
    const outcome = await check(page, 'missing', { strictEnvironment: true }, { environment: DEBIAN_57 });
    expect(outcome.error?.code).toBe('MACVM_SNAPSHOT_ENV_MISMATCH');
    expect(outcome.error!.message).toContain('was not compared: baseline taken on linux (6.1.0-56-cloud-amd64) / qemu VGA (std) / qemu, this run is linux (6.1.0-57-cloud-amd64)');
    expect(outcome.error!.message).toContain('differs in guestBuild');
    expect(outcome.error!.hint).toContain('{env} in pathTemplate');
    expect(outcome.artifact!.snapshot!.environmentMismatch).toContain('guestBuild');
    expect(outcome.compare).toBeUndefined();
    const after = await baselineFiles();
    expect(after.png.equals(before.png)).toBe(true);
    expect(after.sidecar).toBe(before.sidecar);
    // -u on the new environment re-records it, picture and sidecar.
    expect(await check(pageChanged, 'changed', { strictEnvironment: true }, { environment: DEBIAN_57 })).toMatchObject({ status: 'updated' });
    expect((await readFile(baselinePath())).equals(pageChanged)).toBe(true);
    expect(JSON.parse(await readFile(`${baselinePath()}.json`, 'utf8')).guestBuild).toBe('6.1.0-57-cloud-amd64');
  });

  it("-u ('changed') refreshes only the sidecar when the environment differs but the pixels match", async () => {
    await check(page, 'missing', {}, { environment: DEBIAN_56 });
    const before = await baselineFiles();
    const writes: string[] = [];
    const recording = async (path: string, data: Buffer | string) => {
      writes.push(path);
      await writeFileAtomic(path, data);
    };
    const outcome = await check(page, 'changed', {}, { environment: DEBIAN_57, writeFile: recording, now: () => new Date('2024-06-01T08:00:00Z') });
    expect(outcome).toMatchObject({ pass: true, status: 'updated' });
    expect(outcome.environmentNote).toContain('pixels match (differs in guestBuild); sidecar updated to linux (6.1.0-57-cloud-amd64)');
    expect(outcome.artifact!.snapshot!.environmentNote).toBe(outcome.environmentNote);
    expect(writes).toEqual([`${baselinePath()}.json`]); // through the same (atomic) writer, the PNG not at all
    const after = await baselineFiles();
    expect(after.png.equals(before.png)).toBe(true);
    expect(JSON.parse(after.sidecar)).toEqual({ ...DEBIAN_57, takenAt: '2024-06-01T08:00:00.000Z' });
    // The refreshed sidecar now agrees with this environment: a plain match, no note.
    const again = await check(page, 'none', {}, { environment: DEBIAN_57 });
    expect(again).toMatchObject({ pass: true, status: 'matched' });
    expect(again.environmentNote).toBeUndefined();
    expect(again.artifact).toBeUndefined();
  });

  it("-u ('changed') still rewrites picture and sidecar when the pixels from another environment differ", async () => {
    await check(page, 'missing', {}, { environment: DEBIAN_56 });
    const outcome = await check(pageChanged, 'changed', {}, { environment: DEBIAN_57 });
    expect(outcome).toMatchObject({ pass: true, status: 'updated' });
    expect(outcome.environmentNote).toBeUndefined();
    expect((await readFile(baselinePath())).equals(pageChanged)).toBe(true);
    expect(JSON.parse(await readFile(`${baselinePath()}.json`, 'utf8')).guestBuild).toBe('6.1.0-57-cloud-amd64');
  });

  it('keeps per-environment baselines apart with {env} in pathTemplate', async () => {
    const pathTemplate = '{specDir}/__image_snapshots__/{env}/{name}.png';
    const a = await check(page, 'missing', { pathTemplate });
    const b = await check(pageChanged, 'missing', { pathTemplate }, { environment: SONOMA_145 });
    expect(a.baselinePath).toContain('vz-macos-14.4-23e214-apple-paravirtual-device-1920x1080@2x');
    expect(b.baselinePath).not.toBe(a.baselinePath);
    expect(b.status).toBe('written');
  });

  it('rejects an unknown path template token', async () => {
    expect((await rejected(check(page, 'missing', { pathTemplate: '{specDir}/{nme}.png' }))).code).toBe('MACVM_CONFIG_INVALID');
  });

  it('leaves the old baseline intact when the update write is interrupted', async () => {
    await check(page, 'missing');
    // A writer that dies after writing part of its temp file: what a crash mid-update leaves.
    const interrupted = async (path: string, data: Buffer | string) => {
      await writeFile(`${path}.partial.tmp`, Buffer.from(data).subarray(0, 100));
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    const error = await rejected(check(pageChanged, 'changed', {}, { writeFile: interrupted }));
    expect(error.code).toBe('MACVM_SNAPSHOT_WRITE_FAILED');
    expect((await readFile(baselinePath())).equals(page)).toBe(true);
  });
});

describe('atomic baseline update on a full disk', () => {
  const mountPoint = join(tmpdir(), `macvm-snapshot-full-${process.pid}`);
  let mounted = false;
  beforeEach(async () => {
    await mkdir(mountPoint, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint], { stdio: 'ignore' });
      mounted = true;
    } catch {
      mounted = false;
    }
  });
  afterEach(async () => {
    if (mounted) execFileSync('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });

  it('keeps the old bytes when the new baseline does not fit (real ENOSPC from a 64 KiB tmpfs)', async (context) => {
    if (!mounted) context.skip('needs permission to mount a tmpfs');
    const specPath = join(mountPoint, 'x.spec.ts');
    const small = page;
    const noise: RgbaImage = { width: 200, height: 200, data: randomBytes(200 * 200 * 4) }; // ~160 KB, incompressible
    const runOn = (update: UpdateMode): SnapshotRun => ({ specPath, root: mountPoint, name: 'screen', reportsDir: join(dir, 'reports'), update, environment: {}, writeFile: (p, d) => writeFileAtomic(p, d) });
    await matchImageSnapshot(small, {}, runOn('missing'));
    const path = join(mountPoint, '__image_snapshots__', 'x.spec.ts', 'screen.png');
    const error = await rejected(matchImageSnapshot(encodePng(noise, { level: 0 }), {}, runOn('all')));
    expect(error.code).toBe('MACVM_SNAPSHOT_WRITE_FAILED');
    expect((error.cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect((await readFile(path)).equals(small)).toBe(true);
  });
});
