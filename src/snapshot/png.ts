import { promisify } from 'node:util';
import { crc32, deflateSync, inflate, inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { MacvmError, messageOf, type MacvmErrorCode } from '../errors.js';

/** Decoded pixels: 8-bit RGBA, rows top to bottom, no padding. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Buffer;
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlace: number;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// The last 12 bytes of every complete PNG: length 0, "IEND", its fixed CRC.
const IEND_TRAILER = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
/** Far beyond any display (16K × 16K); stops a corrupt header from asking for gigabytes. */
const MAX_PIXELS = 16384 * 16384;

/** What a decode error is about: the image handed in, or a baseline file on disk. */
export interface PngSource {
  code: Extract<MacvmErrorCode, 'MACVM_PNG_INVALID' | 'MACVM_SNAPSHOT_CORRUPT'>;
  /** "the image passed to toMatchImageSnapshot", "baseline /path/x.png" */
  label: string;
  hint?: string;
}

const INPUT: PngSource = { code: 'MACVM_PNG_INVALID', label: 'the image' };

function invalid(source: PngSource, problem: string, cause?: unknown): MacvmError {
  return new MacvmError(source.code, `${capitalise(source.label)} is not a readable PNG: ${problem}.`, {
    hint: source.hint,
    cause,
    details: { problem },
  });
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Accepts what screenshot APIs hand out: PNG bytes (Buffer/Uint8Array) or base64 (WebDriver's
 * takeScreenshot, optionally as a data: URL). Returns the bytes without copying a Buffer.
 */
export function toPngBytes(input: unknown, source: PngSource = INPUT): Buffer {
  let bytes: Buffer;
  let checked = source;
  if (Buffer.isBuffer(input)) bytes = input;
  else if (input instanceof Uint8Array) bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  else if (typeof input === 'string') {
    const base64 = input.startsWith('data:') ? input.slice(input.indexOf(',') + 1) : input;
    bytes = Buffer.from(base64.trim(), 'base64');
    // A string is taken as base64; a file path passed by mistake decodes to a few bytes of nothing.
    checked = {
      ...source,
      label: `${source.label} (a string, read as base64 as WebDriver's takeScreenshot returns it)`,
      hint: /^[.~]?\/|\.png$/i.test(input.trim()) ? 'That looks like a file path: pass the file\'s bytes, readFileSync(path), instead.' : source.hint,
    };
  } else {
    throw invalid(source, `expected a Buffer, Uint8Array or base64 string, got ${input === null ? 'null' : typeof input}`);
  }
  readPngHeader(bytes, checked);
  return bytes;
}

/**
 * Checks the structure without inflating anything: signature, IHDR first, IEND last (so a
 * truncated file is caught here). Cheap enough to run on every input.
 */
export function readPngHeader(bytes: Buffer, source: PngSource = INPUT): PngHeader {
  if (bytes.length < SIGNATURE.length + 25 + IEND_TRAILER.length) throw invalid(source, `only ${bytes.length} bytes`);
  if (!bytes.subarray(0, 8).equals(SIGNATURE)) throw invalid(source, 'the PNG signature is missing');
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString('latin1', 12, 16) !== 'IHDR') throw invalid(source, 'the first chunk is not IHDR');
  const header: PngHeader = {
    width: bytes.readUInt32BE(16),
    height: bytes.readUInt32BE(20),
    bitDepth: bytes[24]!,
    colorType: bytes[25]!,
    interlace: bytes[28]!,
  };
  if (header.width === 0 || header.height === 0 || header.width * header.height > MAX_PIXELS) {
    throw invalid(source, `implausible size ${header.width}×${header.height}`);
  }
  if (!bytes.subarray(bytes.length - 12).equals(IEND_TRAILER)) throw invalid(source, 'it is truncated (no IEND chunk at the end)');
  return header;
}

/**
 * Decodes to RGBA. 8-bit RGB/RGBA non-interlaced images — what screen capture tools write —
 * take a fast path (zlib's native inflate, then one unfilter pass straight into the RGBA
 * buffer); anything else goes through pngjs.
 */
export function decodePng(bytes: Buffer, source: PngSource = INPUT): RgbaImage {
  const plan = planDecode(bytes, source);
  return decoding(source, () => (plan.fast ? unfilterAll(inflateSync(plan.fast.deflated, { chunkSize: plan.fast.rawSize }), plan.fast, source) : decodeWithPngjs(bytes)));
}

/**
 * decodePng with the inflate on libuv's thread pool: two images decoded at once inflate in
 * parallel, and one unfilters on the main thread while the other is still inflating.
 */
export async function decodePngAsync(bytes: Buffer, source: PngSource = INPUT): Promise<RgbaImage> {
  const plan = planDecode(bytes, source);
  if (!plan.fast) return decoding(source, () => decodeWithPngjs(bytes));
  const fast = plan.fast;
  let raw: Buffer;
  try {
    raw = await inflateAsync(fast.deflated, { chunkSize: fast.rawSize });
  } catch (error) {
    throw asDecodeError(error, source);
  }
  return decoding(source, () => unfilterAll(raw, fast, source));
}

const inflateAsync = promisify(inflate);

/** What the fast path needs, found without inflating; undefined for images pngjs must decode. */
interface TrueColour {
  width: number;
  height: number;
  channels: 3 | 4;
  deflated: Buffer;
  /** Bytes the inflated stream holds: a filter byte and a row's bytes per row. */
  rawSize: number;
}

function planDecode(bytes: Buffer, source: PngSource): { fast?: TrueColour } {
  const header = readPngHeader(bytes, source);
  const fast = header.bitDepth === 8 && (header.colorType === 2 || header.colorType === 6) && header.interlace === 0;
  return fast ? { fast: decoding(source, () => trueColour(bytes, header, source)) } : {};
}

/** Runs a decode step; anything but a MacvmError becomes this source's "not a readable PNG". */
function decoding<T>(source: PngSource, step: () => T): T {
  try {
    return step();
  } catch (error) {
    throw asDecodeError(error, source);
  }
}

function asDecodeError(error: unknown, source: PngSource): MacvmError {
  return error instanceof MacvmError ? error : invalid(source, messageOf(error), error);
}

function decodeWithPngjs(bytes: Buffer): RgbaImage {
  const png = PNG.sync.read(bytes);
  return { width: png.width, height: png.height, data: png.data };
}

function trueColour(bytes: Buffer, header: PngHeader, source: PngSource): TrueColour {
  const idat: Buffer[] = [];
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const end = offset + 12 + length;
    if (end > bytes.length) throw invalid(source, `chunk ${type} runs past the end of the file`);
    if (type === 'IDAT') idat.push(bytes.subarray(offset + 8, offset + 8 + length));
    if (type === 'IEND') break;
    offset = end;
  }
  if (idat.length === 0) throw invalid(source, 'it has no image data (IDAT)');
  const { width, height } = header;
  const channels = header.colorType === 6 ? 4 : 3;
  // One output chunk of the expected size: zlib then inflates in one go instead of gathering
  // 16 KiB pieces and copying them together at the end.
  return { width, height, channels, deflated: idat.length === 1 ? idat[0]! : Buffer.concat(idat), rawSize: (width * channels + 1) * height };
}

/** zlib has checked the Adler-32 of the whole stream, so corrupt image data cannot pass silently. */
function unfilterAll(raw: Buffer, image: TrueColour, source: PngSource): RgbaImage {
  const { width, height, channels } = image;
  const stride = width * channels;
  if (raw.length < image.rawSize) throw invalid(source, `image data is short (${raw.length} of ${image.rawSize} bytes)`);
  const data = Buffer.allocUnsafeSlow(width * height * 4);
  if (channels === 4) unfilterInto(raw, data, stride, height, 4, source);
  else {
    // Unfilter RGB rows into a scratch buffer first (filters work on the stored layout), then widen.
    const rgb = Buffer.allocUnsafeSlow(stride * height);
    unfilterInto(raw, rgb, stride, height, 3, source);
    widenRgb(rgb, data, width * height);
  }
  return { width, height, data };
}

/**
 * Reverses the PNG row filters: each filtered row (after its filter-type byte in `raw`) is
 * copied into place in `out` natively, then reconstructed in place, reading the previous row
 * back from `out`. With 4-byte pixels every filter works on whole pixels in 32-bit words (SWAR:
 * the top bit of each byte is handled apart, so no carry crosses a byte): Sub and Up add a
 * word, Average adds the bytewise floor average, and Paeth — the costly one, a choice per byte —
 * takes the shortcut that flat UI areas allow: where the pixel above equals the one above-left,
 * every byte's predictor is the left one, and where the left equals the above-left it is the one
 * above (both follow from the predictor's definition); only the other pixels go byte by byte.
 */
function unfilterInto(rawBuffer: Buffer, outBuffer: Buffer, stride: number, height: number, bpp: number, source: PngSource): void {
  const raw = new Uint8Array(rawBuffer.buffer, rawBuffer.byteOffset, rawBuffer.byteLength);
  const out = new Uint8Array(outBuffer.buffer, outBuffer.byteOffset, outBuffer.byteLength);
  const words = bpp === 4 && outBuffer.byteOffset % 4 === 0 ? new Uint32Array(outBuffer.buffer, outBuffer.byteOffset, outBuffer.byteLength >> 2) : undefined;
  const rowWords = stride >> 2;
  for (let y = 0; y < height; y++) {
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    const filter = raw[src - 1]!;
    out.set(raw.subarray(src, src + stride), dst);
    if (filter === 0 || (filter === 2 && y === 0)) continue;
    if (filter < 1 || filter > 4) throw invalid(source, `row ${y} has unknown filter type ${filter}`);
    if (words) unfilterWords(words, filter, dst >> 2, rowWords, y > 0);
    else unfilterBytes(out, filter, dst, stride, bpp, y > 0);
  }
}

/** One row of 4-byte pixels, `first` its first word; `hasUp`: a row above exists. */
function unfilterWords(words: Uint32Array, filter: number, first: number, rowWords: number, hasUp: boolean): void {
  const end = first + rowWords;
  if (filter === 1) {
    for (let k = first + 1; k < end; k++) words[k] = addBytes(words[k]!, words[k - 1]!);
  } else if (filter === 2) {
    for (let k = first; k < end; k++) words[k] = addBytes(words[k]!, words[k - rowWords]!);
  } else if (filter === 3) {
    words[first] = addBytes(words[first]!, hasUp ? (words[first - rowWords]! >>> 1) & 0x7f7f7f7f : 0);
    for (let k = first + 1; k < end; k++) words[k] = addBytes(words[k]!, averageBytes(words[k - 1]!, hasUp ? words[k - rowWords]! : 0));
  } else if (!hasUp) {
    // Paeth on the first row is Sub: only the left neighbour exists.
    for (let k = first + 1; k < end; k++) words[k] = addBytes(words[k]!, words[k - 1]!);
  } else {
    // Paeth. The first pixel has no left or upper-left neighbour: its predictor is the pixel above.
    words[first] = addBytes(words[first]!, words[first - rowWords]!);
    const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
    for (let k = first + 1; k < end; k++) {
      const up = words[k - rowWords]!;
      const upLeft = words[k - rowWords - 1]!;
      if (up === upLeft) words[k] = addBytes(words[k]!, words[k - 1]!);
      else if (words[k - 1] === upLeft) words[k] = addBytes(words[k]!, up);
      else for (let i = k * 4, stop = i + 4; i < stop; i++) bytes[i] = bytes[i]! + paeth(bytes[i - 4]!, bytes[i - rowWords * 4]!, bytes[i - rowWords * 4 - 4]!);
    }
  }
}

/** One row of pixels of any size, byte by byte; `dst` is its offset in `out`. */
function unfilterBytes(out: Uint8Array, filter: number, dst: number, stride: number, bpp: number, hasUp: boolean): void {
  const up = dst - stride;
  if (filter === 1) {
    for (let i = dst + bpp, end = dst + stride; i < end; i++) out[i] = out[i]! + out[i - bpp]!; // a Uint8Array store wraps mod 256
  } else if (filter === 2) {
    for (let i = dst, end = dst + stride; i < end; i++) out[i] = out[i]! + out[i - stride]!;
  } else if (filter === 3) {
    for (let i = 0; i < stride; i++) {
      const left = i >= bpp ? out[dst + i - bpp]! : 0;
      const above = hasUp ? out[up + i]! : 0;
      out[dst + i] = out[dst + i]! + ((left + above) >> 1);
    }
  } else if (!hasUp) {
    for (let i = dst + bpp, end = dst + stride; i < end; i++) out[i] = out[i]! + out[i - bpp]!;
  } else {
    for (let i = dst; i < dst + bpp; i++) out[i] = out[i]! + out[i - stride]!;
    for (let i = dst + bpp, end = dst + stride; i < end; i++) out[i] = out[i]! + paeth(out[i - bpp]!, out[i - stride]!, out[i - stride - bpp]!);
  }
}

/** The PNG Paeth predictor of one byte from its left (a), upper (b) and upper-left (c) neighbours. */
function paeth(a: number, b: number, c: number): number {
  if (b === c) return a;
  if (a === c) return b;
  let pa = b - c;
  if (pa < 0) pa = -pa;
  let pb = a - c;
  if (pb < 0) pb = -pb;
  let pc = a + b - c - c;
  if (pc < 0) pc = -pc;
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Four independent floor((a + b) / 2) in one 32-bit word. */
function averageBytes(a: number, b: number): number {
  return (a & b) + (((a ^ b) >>> 1) & 0x7f7f7f7f);
}

/** Four independent byte additions modulo 256 in one 32-bit word. */
function addBytes(a: number, b: number): number {
  return ((a & 0x7f7f7f7f) + (b & 0x7f7f7f7f)) ^ ((a ^ b) & 0x80808080);
}

function widenRgb(rgbBuffer: Buffer, outBuffer: Buffer, pixels: number): void {
  const rgb = new Uint8Array(rgbBuffer.buffer, rgbBuffer.byteOffset, rgbBuffer.byteLength);
  const out = new Uint8Array(outBuffer.buffer, outBuffer.byteOffset, outBuffer.byteLength);
  for (let p = 0, i = 0, o = 0; p < pixels; p++, i += 3, o += 4) {
    out[o] = rgb[i]!;
    out[o + 1] = rgb[i + 1]!;
    out[o + 2] = rgb[i + 2]!;
    out[o + 3] = 255;
  }
}

/**
 * Encodes RGBA as an 8-bit RGBA PNG. `filter: 'sub'` (default) stores each byte as its difference
 * from the pixel to the left, so flat UI areas become runs of zeros and files stay small;
 * `filter: 'none'` skips that pass entirely (rows are copied natively) — right for diff
 * pictures, which are mostly one faded tone and are thrown away after the run.
 */
export function encodePng(image: RgbaImage, options: { level?: number; filter?: 'sub' | 'none' } = {}): Buffer {
  const { width, height, data } = image;
  const stride = width * 4;
  const filtered = Buffer.allocUnsafeSlow((stride + 1) * height);
  const sub = (options.filter ?? 'sub') === 'sub';
  for (let y = 0; y < height; y++) {
    const out = y * (stride + 1);
    const src = y * stride;
    filtered[out] = sub ? 1 : 0;
    if (!sub) {
      data.copy(filtered, out + 1, src, src + stride);
      continue;
    }
    data.copy(filtered, out + 1, src, src + 4);
    for (let i = 4; i < stride; i++) filtered[out + 1 + i] = (data[src + i]! - data[src + i - 4]!) & 0xff;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(filtered, { level: options.level ?? 6 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body, crc32(head.subarray(4))) >>> 0, 0);
  return Buffer.concat([head, body, crc]);
}
