import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { allowedDiffPixels, compareImages, comparePngs } from '../../src/snapshot/compare.js';
import { encodePng, type RgbaImage } from '../../src/snapshot/png.js';
import { syntheticPage } from '../fixtures/snapshot/synthetic-page.js';

const W = 400;
const H = 300;
const clone = (image: RgbaImage): RgbaImage => ({ ...image, data: Buffer.from(image.data) });
const base = syntheticPage({ width: W, height: H, seed: 3 });
const changed = syntheticPage({ width: W, height: H, seed: 3, changes: [{ x: 100, y: 120, width: 30, height: 10 }] });

describe('compare', () => {
  it('decides byte-identical files without decoding them', async () => {
    const png = encodePng(base);
    const result = await comparePngs(png, Buffer.from(png));
    expect(result).toMatchObject({ identical: true, method: 'bytes', diffPixels: 0, width: W, height: H });
  });

  it('decides equal pixels in differently encoded files with one buffer comparison', async () => {
    const ours = encodePng(base);
    const png = new PNG({ width: W, height: H });
    base.data.copy(png.data);
    const theirs = PNG.sync.write(png, { filterType: 4 });
    expect(ours.equals(theirs)).toBe(false);
    expect(await comparePngs(ours, theirs)).toMatchObject({ identical: true, method: 'pixels', diffPixels: 0 });
  });

  it('counts and draws exactly what a full pixelmatch pass does', () => {
    // A few edge cases at once: a change at the top row, one in the middle, anti-aliasing-like fringes.
    const actual = syntheticPage({ width: W, height: H, seed: 3, changes: [{ x: 0, y: 0, width: 5, height: 1 }, { x: 200, y: 150, width: 40, height: 3, rgb: [180, 180, 180] }] });
    const fullDiff = Buffer.alloc(W * H * 4);
    const expected = pixelmatch(base.data, actual.data, fullDiff, W, H, { threshold: 0.1, checkerboard: false });
    const result = compareImages(clone(base), clone(actual), { diffImage: true });
    expect(result.method).toBe('pixelmatch');
    expect(expected).toBeGreaterThan(0);
    expect(result.diffPixels).toBe(expected);
    expect(result.diffRatio).toBeCloseTo(expected / (W * H), 10);
    expect(result.diff!.data.equals(fullDiff)).toBe(true);
  });

  it('reports different sizes as a mismatch instead of throwing', () => {
    const small = syntheticPage({ width: 200, height: 100 });
    const result = compareImages(clone(base), small);
    expect(result.identical).toBe(false);
    expect(result.sizeMismatch).toEqual({ expected: { width: W, height: H }, actual: { width: 200, height: 100 } });
  });

  it('paints masks out on both sides', () => {
    expect(compareImages(clone(base), clone(changed)).diffPixels).toBeGreaterThan(0);
    const masked = compareImages(clone(base), clone(changed), { masks: [{ x: 95, y: 115, width: 40, height: 20 }] });
    expect(masked).toMatchObject({ identical: true, diffPixels: 0 });
    const tooSmall = compareImages(clone(base), clone(changed), { masks: [{ x: 100, y: 120, width: 10, height: 10 }] });
    const unmasked = compareImages(clone(base), clone(changed)).diffPixels;
    expect(tooSmall.diffPixels).toBeGreaterThan(0);
    expect(tooSmall.diffPixels).toBeLessThan(unmasked);
  });

  it('tolerates anti-aliased pixels unless includeAA is set', () => {
    // White | one grey column | black: the grey column is an anti-aliased edge, in both images
    // (only its shade differs), so pixelmatch tolerates it unless includeAA is set.
    const edge = (grey: number): RgbaImage => {
      const image = { width: 40, height: 40, data: Buffer.alloc(40 * 40 * 4, 255) };
      for (let y = 0; y < 40; y++) {
        for (let x = 20; x < 40; x++) image.data.fill(x === 20 ? grey : 0, (y * 40 + x) * 4, (y * 40 + x) * 4 + 3);
      }
      return image;
    };
    const a = edge(110);
    const b = edge(170);
    const tolerant = compareImages(clone(a), clone(b));
    const strict = compareImages(clone(a), clone(b), { includeAA: true });
    expect(tolerant.diffPixels).toBe(0);
    expect(strict.diffPixels).toBe(40);
  });

  it('lets the stricter of maxDiffPixels and maxDiffPixelRatio win', () => {
    expect(allowedDiffPixels(10_000, {})).toBe(0);
    expect(allowedDiffPixels(10_000, { maxDiffPixels: 50 })).toBe(50);
    expect(allowedDiffPixels(10_000, { maxDiffPixelRatio: 0.01 })).toBe(100);
    expect(allowedDiffPixels(10_000, { maxDiffPixels: 50, maxDiffPixelRatio: 0.01 })).toBe(50);
    expect(allowedDiffPixels(10_000, { maxDiffPixels: 500, maxDiffPixelRatio: 0.01 })).toBe(100);
  });
});

describe('alpha counts', () => {
  const solid = (width: number, height: number, rgba: [number, number, number, number]) => {
    const data = Buffer.alloc(width * height * 4);
    for (let i = 0; i < data.length; i += 4) data.set(rgba, i);
    return { width, height, data };
  };

  it('a transparent pixel is not an opaque white one, and the count is pixelmatch\'s own', () => {
    const transparent = solid(40, 30, [255, 255, 255, 0]);
    const white = solid(40, 30, [255, 255, 255, 255]);
    // Only a band of rows differs, so the band fast path would otherwise be taken.
    const partly = solid(40, 30, [255, 255, 255, 255]);
    for (let i = 10 * 40 * 4; i < 14 * 40 * 4; i += 4) partly.data[i + 3] = 0;
    for (const [a, b] of [[transparent, white], [white, partly]] as const) {
      const reference = pixelmatch(Buffer.from(a.data), Buffer.from(b.data), undefined, a.width, a.height, { threshold: 0.1 });
      const ours = compareImages({ ...a, data: Buffer.from(a.data) }, { ...b, data: Buffer.from(b.data) });
      expect(reference).toBeGreaterThan(0);
      expect(ours.diffPixels).toBe(reference);
    }
  });

  it('half-transparent colours are compared as pixelmatch compares them, over the whole picture', () => {
    const a = solid(64, 64, [200, 30, 30, 128]);
    const b = solid(64, 64, [200, 30, 30, 128]);
    for (let i = 20 * 64 * 4; i < 22 * 64 * 4; i += 4) b.data.set([30, 200, 30, 90], i);
    const reference = pixelmatch(Buffer.from(a.data), Buffer.from(b.data), undefined, 64, 64, { threshold: 0.1 });
    expect(compareImages({ ...a, data: Buffer.from(a.data) }, { ...b, data: Buffer.from(b.data) }).diffPixels).toBe(reference);
  });
});
