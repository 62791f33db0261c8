import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { compareImages, comparePngs } from '../../src/snapshot/compare.js';
import { decodePng, encodePng, type RgbaImage } from '../../src/snapshot/png.js';

// compareImages runs pixelmatch only on the rows that differ plus a margin (pixelmatch's
// anti-aliasing check reads a pixel's neighbours and theirs: two rows each way). These tests
// hold it to a full pixelmatch pass — count and diff picture — on real screenshots: the qemu
// VGA console (hard-edged text) and a chromium page (anti-aliased text).
const root = join(import.meta.dirname, '..', '..');
const REAL = {
  console: join(root, 'specs/__image_snapshots__/console-screenshot.spec.ts/console-banner.png'),
  browser: join(root, 'test/integration/__image_snapshots__/browser-qemu.test.ts/host-page.png'),
};

const copy = (image: RgbaImage): RgbaImage => ({ ...image, data: Buffer.from(image.data) });

function full(a: RgbaImage, b: RgbaImage, includeAA = false): { count: number; diff: Buffer } {
  const diff = Buffer.alloc(a.data.length);
  const count = pixelmatch(Buffer.from(a.data), Buffer.from(b.data), diff, a.width, a.height, { threshold: 0.1, includeAA });
  return { count, diff };
}

/** pixelmatch over exactly the differing rows, each on its own, with no margin: what a band without one would count. */
function marginless(a: RgbaImage, b: RgbaImage): number {
  const stride = a.width * 4;
  let count = 0;
  for (let y = 0; y < a.height; y++) {
    const rows = (image: RgbaImage) => Buffer.from(image.data.subarray(y * stride, (y + 1) * stride));
    if (!rows(a).equals(rows(b))) count += pixelmatch(rows(a), rows(b), undefined, a.width, 1, { threshold: 0.1 });
  }
  return count;
}

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Edits like a re-render: a rectangle moved by a pixel, recoloured slightly, or overwritten. */
function edit(image: RgbaImage, rnd: () => number, count: number): RgbaImage {
  const out = copy(image);
  const { width, height } = image;
  for (let n = 0; n < count; n++) {
    const w = 1 + Math.floor(rnd() * 40);
    const h = 1 + Math.floor(rnd() * 6);
    const x0 = Math.floor(rnd() * (width - w));
    // Edges of the picture on purpose now and then: bands are clipped there.
    const y0 = rnd() < 0.15 ? (rnd() < 0.5 ? 0 : height - h) : Math.floor(rnd() * (height - h));
    const kind = Math.floor(rnd() * 3);
    for (let y = y0; y < y0 + h; y++) {
      for (let x = x0; x < x0 + w; x++) {
        const i = (y * width + x) * 4;
        if (kind === 0 && x > 0) image.data.copy(out.data, i, i - 4, i); // shifted one pixel right
        else if (kind === 1) for (let c = 0; c < 3; c++) out.data[i + c] = Math.max(0, Math.min(255, image.data[i + c]! + (rnd() < 0.5 ? -60 : 60)));
        else out.data.fill(Math.floor(rnd() * 256), i, i + 3);
      }
    }
  }
  return out;
}

describe('band-limited compare equals a full pixelmatch pass on real screenshots', () => {
  for (const [name, path] of Object.entries(REAL)) {
    const base = decodePng(readFileSync(path));

    it(`${name}: 40 random re-render edits, count and diff picture, with and without includeAA`, () => {
      const rnd = random(name.length * 7919);
      for (let trial = 0; trial < 40; trial++) {
        const changed = edit(base, rnd, 1 + Math.floor(rnd() * 4));
        const includeAA = trial % 4 === 3;
        const reference = full(base, changed, includeAA);
        const ours = compareImages(copy(base), copy(changed), { diffImage: true, includeAA });
        expect(ours.diffPixels, `trial ${trial}`).toBe(reference.count);
        if (reference.count > 0) expect(ours.diff!.data.equals(reference.diff), `trial ${trial} diff picture`).toBe(true);
      }
    });
  }

  it('counts what a full pass does where anti-aliasing detection needs the rows around a change', () => {
    // On the browser page's anti-aliased text, moving glyph pixels by one makes pixelmatch call some
    // of them anti-aliasing, judged from rows the change does not touch: a band cut at the changed
    // rows would count otherwise. Find such edits, then hold compareImages to the full pass on them.
    const base = decodePng(readFileSync(REAL.browser));
    const rnd = random(11);
    let sensitive = 0;
    for (let trial = 0; trial < 200 && sensitive < 5; trial++) {
      const changed = edit(base, rnd, 1);
      const reference = full(base, changed).count;
      if (marginless(base, changed) === reference) continue;
      sensitive++;
      expect(compareImages(copy(base), copy(changed)).diffPixels).toBe(reference);
    }
    expect(sensitive).toBeGreaterThan(0);
  });

  it('two changes closer than the margin, at the first and the last rows', () => {
    const base = decodePng(readFileSync(REAL.console));
    const { width, height } = base;
    for (const rows of [[0, 3], [0, 5], [10, 14], [10, 15], [height - 5, height - 1], [height - 1]]) {
      const changed = copy(base);
      for (const y of rows) for (let x = 0; x < width; x += 7) for (let c = 0; c < 3; c++) changed.data[(y * width + x) * 4 + c] = 255 - base.data[(y * width + x) * 4 + c]!;
      const reference = full(base, changed);
      const ours = compareImages(copy(base), copy(changed), { diffImage: true });
      expect(reference.count).toBeGreaterThan(0);
      expect(ours.diffPixels, `rows ${rows.join(',')}`).toBe(reference.count);
      expect(ours.diff!.data.equals(reference.diff)).toBe(true);
    }
  });

  it('comparePngs on PNG files counts what pngjs + pixelmatch count', async () => {
    const bytes = readFileSync(REAL.browser);
    const base = decodePng(bytes);
    const changed = edit(base, random(5), 3);
    const theirs = PNG.sync.read(bytes);
    const reference = pixelmatch(theirs.data, changed.data, undefined, base.width, base.height, { threshold: 0.1 });
    expect(reference).toBeGreaterThan(0);
    expect((await comparePngs(bytes, encodePng(changed))).diffPixels).toBe(reference);
  });
});
