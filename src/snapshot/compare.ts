import pixelmatch from 'pixelmatch';
import { decodePng, readPngHeader, type PngSource, type RgbaImage } from './png.js';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface CompareOptions {
  /** pixelmatch's per-pixel colour distance, 0–1 (default 0.1). */
  threshold?: number;
  /** Count anti-aliased pixels as differences (default false: they are tolerated). */
  includeAA?: boolean;
  /** Painted out in both images before comparing. */
  masks?: readonly Rect[];
  /** Produce a diff image (only when the images differ). */
  diffImage?: boolean;
}

export interface CompareResult {
  width: number;
  height: number;
  /** Pixel data (after masks) are equal: decided without pixelmatch. */
  identical: boolean;
  /** How it was decided, for benchmarks and debugging. */
  method: 'bytes' | 'pixels' | 'pixelmatch' | 'size';
  /** Set when the sizes differ; then diffPixels counts every pixel of the larger image. */
  sizeMismatch?: { expected: { width: number; height: number }; actual: { width: number; height: number } };
  diffPixels: number;
  /** diffPixels / (width × height) */
  diffRatio: number;
  /** RGBA diff picture (pixelmatch's colours) when requested and the images differ. */
  diff?: RgbaImage;
}

/** Mask colour: loud magenta, so a masked area is obvious in the artifacts. */
const MASK_RGBA = [255, 0, 255, 255] as const;
/**
 * pixelmatch's anti-aliasing check looks at a pixel's neighbours and at their neighbours:
 * two rows each way. Comparing only the band of differing rows plus this margin counts
 * exactly what a full pass would.
 */
const AA_MARGIN_ROWS = 2;

/**
 * Compares two PNG files. Byte-identical files are decided without decoding either one;
 * otherwise each is decoded once and handed to compareImages.
 */
export function comparePngs(expected: Buffer, actual: Buffer, options: CompareOptions = {}, sources?: { expected?: PngSource; actual?: PngSource }): CompareResult {
  if (expected.equals(actual)) {
    const { width, height } = readPngHeader(actual, sources?.actual);
    return { width, height, identical: true, method: 'bytes', diffPixels: 0, diffRatio: 0 };
  }
  return compareImages(decodePng(expected, sources?.expected), decodePng(actual, sources?.actual), options);
}

/**
 * Compares decoded images. Masks are painted into the given buffers (callers pass images they
 * own). Equal buffers are decided by one memcmp; otherwise only the band of rows that differ
 * goes through pixelmatch, and the rest of the diff picture is filled in directly.
 */
export function compareImages(expected: RgbaImage, actual: RgbaImage, options: CompareOptions = {}): CompareResult {
  if (expected.width !== actual.width || expected.height !== actual.height) {
    const width = Math.max(expected.width, actual.width);
    const height = Math.max(expected.height, actual.height);
    return {
      width,
      height,
      identical: false,
      method: 'size',
      sizeMismatch: { expected: { width: expected.width, height: expected.height }, actual: { width: actual.width, height: actual.height } },
      diffPixels: width * height,
      diffRatio: 1,
    };
  }
  const { width, height } = actual;
  for (const mask of options.masks ?? []) {
    paintRect(expected, mask);
    paintRect(actual, mask);
  }
  if (expected.data.equals(actual.data)) return { width, height, identical: true, method: 'pixels', diffPixels: 0, diffRatio: 0 };

  const stride = width * 4;
  let first = 0;
  while (rowEquals(expected.data, actual.data, first, stride)) first++;
  let last = height - 1;
  while (rowEquals(expected.data, actual.data, last, stride)) last--;
  const top = Math.max(0, first - AA_MARGIN_ROWS);
  const bottom = Math.min(height - 1, last + AA_MARGIN_ROWS);

  const diff = options.diffImage ? { width, height, data: Buffer.allocUnsafeSlow(stride * height) } : undefined;
  const band = (image: Buffer) => aligned(image.subarray(top * stride, (bottom + 1) * stride));
  const diffPixels = pixelmatch(band(expected.data), band(actual.data), diff ? diff.data.subarray(top * stride, (bottom + 1) * stride) : undefined, width, bottom - top + 1, {
    threshold: options.threshold ?? 0.1,
    includeAA: options.includeAA ?? false,
    // Blend translucent pixels on white: a checkerboard would depend on the band's offset.
    checkerboard: false,
  });
  if (diff) {
    fadeRows(expected.data, diff.data, 0, top, stride);
    fadeRows(expected.data, diff.data, bottom + 1, height, stride);
  }
  return { width, height, identical: false, method: 'pixelmatch', diffPixels, diffRatio: diffPixels / (width * height), ...(diff ? { diff } : {}) };
}

function rowEquals(a: Buffer, b: Buffer, row: number, stride: number): boolean {
  const start = row * stride;
  return a.subarray(start, start + stride).equals(b.subarray(start, start + stride));
}

/** pixelmatch reads through a Uint32Array view, which needs a 4-byte aligned offset. */
function aligned(view: Buffer): Buffer {
  return view.byteOffset % 4 === 0 ? view : Buffer.from(view);
}

/** The diff picture's background for unchanged rows: the expected image, faded towards white (as pixelmatch draws it). */
function fadeRows(source: Buffer, out: Buffer, fromRow: number, toRow: number, stride: number): void {
  const alpha = 0.1;
  for (let i = fromRow * stride, end = toRow * stride; i < end; i += 4) {
    const luma = source[i]! * 0.29889531 + source[i + 1]! * 0.58662247 + source[i + 2]! * 0.11448223;
    const value = 255 + ((luma - 255) * alpha * source[i + 3]!) / 255;
    out[i] = value;
    out[i + 1] = value;
    out[i + 2] = value;
    out[i + 3] = 255;
  }
}

/** Paints a rectangle (clipped to the image) in the mask colour. */
export function paintRect(image: RgbaImage, rect: Rect): void {
  const x0 = Math.max(0, Math.floor(rect.x));
  const y0 = Math.max(0, Math.floor(rect.y));
  const x1 = Math.min(image.width, Math.ceil(rect.x + rect.width));
  const y1 = Math.min(image.height, Math.ceil(rect.y + rect.height));
  if (x1 <= x0 || y1 <= y0) return;
  const pixel = Buffer.from(MASK_RGBA);
  for (let y = y0; y < y1; y++) {
    const start = (y * image.width + x0) * 4;
    image.data.fill(pixel, start, start + (x1 - x0) * 4);
  }
}

/** The allowed number of differing pixels: the stricter of the two limits; 0 when neither is given. */
export function allowedDiffPixels(totalPixels: number, limits: { maxDiffPixels?: number; maxDiffPixelRatio?: number }): number {
  const candidates: number[] = [];
  if (limits.maxDiffPixels !== undefined) candidates.push(limits.maxDiffPixels);
  if (limits.maxDiffPixelRatio !== undefined) candidates.push(Math.floor(limits.maxDiffPixelRatio * totalPixels));
  return candidates.length === 0 ? 0 : Math.min(...candidates);
}
