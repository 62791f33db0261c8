import pixelmatch from 'pixelmatch';
import { decodePngAsync, readPngHeader, type PngSource, type RgbaImage } from './png.js';

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
 * otherwise both are decoded at once (their inflates overlap on zlib's thread pool) and
 * handed to compareImages.
 */
export async function comparePngs(expected: Buffer, actual: Buffer, options: CompareOptions = {}, sources?: { expected?: PngSource; actual?: PngSource }): Promise<CompareResult> {
  if (expected.equals(actual)) {
    const { width, height } = readPngHeader(actual, sources?.actual);
    return { width, height, identical: true, method: 'bytes', diffPixels: 0, diffRatio: 0 };
  }
  const [before, after] = await Promise.all([decodePngAsync(expected, sources?.expected), decodePngAsync(actual, sources?.actual)]);
  return compareImages(before, after, options);
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
  const diff = options.diffImage ? { width, height, data: Buffer.allocUnsafeSlow(stride * height) } : undefined;
  let diffPixels = 0;
  let drawn = 0; // rows of the diff picture filled so far
  let bands = differingBands(expected.data, actual.data, stride, height);
  // pixelmatch blends translucent pixels onto a checkerboard keyed to each pixel's offset in the
  // buffer, so that a transparent pixel never equals an opaque white one. A band would shift that
  // pattern: where alpha is in play, the whole picture goes through in one pass.
  if (bands.some(([top, bottom]) => translucent(expected.data, top, bottom, stride) || translucent(actual.data, top, bottom, stride))) bands = [[0, height - 1]];
  for (const [top, bottom] of bands) {
    const rows = (image: Buffer) => aligned(image.subarray(top * stride, (bottom + 1) * stride));
    diffPixels += pixelmatch(rows(expected.data), rows(actual.data), diff ? diff.data.subarray(top * stride, (bottom + 1) * stride) : undefined, width, bottom - top + 1, {
      threshold: options.threshold ?? 0.1,
      includeAA: options.includeAA ?? false,
      checkerboard: true,
    });
    if (diff) fadeRows(expected.data, diff.data, drawn, top, stride);
    drawn = bottom + 1;
  }
  if (diff) fadeRows(expected.data, diff.data, drawn, height, stride);
  return { width, height, identical: false, method: 'pixelmatch', diffPixels, diffRatio: diffPixels / (width * height), ...(diff ? { diff } : {}) };
}

/**
 * Row ranges [top, bottom] that contain every differing row plus AA_MARGIN_ROWS each way.
 * Ranges closer than that merge, so no pixel's anti-aliasing neighbourhood is cut. Finding
 * them costs one memcmp per row.
 */
function differingBands(a: Buffer, b: Buffer, stride: number, height: number): Array<[number, number]> {
  const bands: Array<[number, number]> = [];
  for (let row = 0; row < height; row++) {
    if (rowEquals(a, b, row, stride)) continue;
    const top = Math.max(0, row - AA_MARGIN_ROWS);
    const bottom = Math.min(height - 1, row + AA_MARGIN_ROWS);
    const last = bands[bands.length - 1];
    // Overlapping or touching bands merge, so each row is compared once.
    if (last && top <= last[1] + 1) last[1] = bottom;
    else bands.push([top, bottom]);
  }
  return bands;
}

/** Whether any pixel of rows top..bottom has alpha below 255. */
function translucent(data: Buffer, top: number, bottom: number, stride: number): boolean {
  for (let i = top * stride + 3; i < (bottom + 1) * stride; i += 4) if (data[i] !== 255) return true;
  return false;
}

function rowEquals(a: Buffer, b: Buffer, row: number, stride: number): boolean {
  const start = row * stride;
  return a.subarray(start, start + stride).equals(b.subarray(start, start + stride));
}

/** pixelmatch reads through a Uint32Array view, which needs a 4-byte aligned offset. */
function aligned(view: Buffer): Buffer {
  return view.byteOffset % 4 === 0 ? view : Buffer.from(view);
}

/**
 * The diff picture's background for unchanged rows: the expected image as grey, faded towards
 * white (as pixelmatch draws it). UI screenshots are long runs of one colour, so the last
 * result is reused while the pixel repeats.
 */
function fadeRows(source: Buffer, out: Buffer, fromRow: number, toRow: number, stride: number): void {
  if (toRow <= fromRow) return;
  if (source.byteOffset % 4 !== 0) source = Buffer.from(source); // Uint32Array views need alignment
  const alpha = 0.1;
  const src32 = new Uint32Array(source.buffer, source.byteOffset + fromRow * stride, ((toRow - fromRow) * stride) >> 2);
  const out32 = new Uint32Array(out.buffer, out.byteOffset + fromRow * stride, src32.length);
  const bytes = new Uint8Array(4);
  const word = new Uint32Array(bytes.buffer);
  let lastIn = -1;
  let lastOut = 0;
  for (let k = 0; k < src32.length; k++) {
    const pixel = src32[k]!;
    if (pixel !== lastIn) {
      word[0] = pixel;
      const luma = bytes[0]! * 0.29889531 + bytes[1]! * 0.58662247 + bytes[2]! * 0.11448223;
      const value = 255 + ((luma - 255) * alpha * bytes[3]!) / 255;
      bytes[0] = value;
      bytes[1] = value;
      bytes[2] = value;
      bytes[3] = 255;
      lastIn = pixel;
      lastOut = word[0]!;
    }
    out32[k] = lastOut;
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
