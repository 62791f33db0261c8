import { crc32, deflateSync, inflateSync } from 'node:zlib';
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
  if (Buffer.isBuffer(input)) bytes = input;
  else if (input instanceof Uint8Array) bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  else if (typeof input === 'string') {
    const base64 = input.startsWith('data:') ? input.slice(input.indexOf(',') + 1) : input;
    bytes = Buffer.from(base64.trim(), 'base64');
  } else {
    throw invalid(source, `expected a Buffer, Uint8Array or base64 string, got ${input === null ? 'null' : typeof input}`);
  }
  readPngHeader(bytes, source);
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
  const header = readPngHeader(bytes, source);
  const fast = header.bitDepth === 8 && (header.colorType === 2 || header.colorType === 6) && header.interlace === 0;
  try {
    return fast ? decodeTrueColour(bytes, header, source) : decodeWithPngjs(bytes);
  } catch (error) {
    if (error instanceof MacvmError) throw error;
    throw invalid(source, messageOf(error), error);
  }
}

function decodeWithPngjs(bytes: Buffer): RgbaImage {
  const png = PNG.sync.read(bytes);
  return { width: png.width, height: png.height, data: png.data };
}

function decodeTrueColour(bytes: Buffer, header: PngHeader, source: PngSource): RgbaImage {
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
  const stride = width * channels;
  // zlib checks the Adler-32 of the whole stream, so corrupt image data cannot pass silently.
  const raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  if (raw.length < (stride + 1) * height) throw invalid(source, `image data is short (${raw.length} of ${(stride + 1) * height} bytes)`);
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
 * back from `out`. Sub (with 4-byte pixels) and Up, the filters screenshots mostly use, add four
 * bytes per step in 32-bit words (SWAR: the top bit of each byte is added separately, so no carry
 * crosses a byte); Average and Paeth go byte by byte.
 */
function unfilterInto(rawBuffer: Buffer, outBuffer: Buffer, stride: number, height: number, bpp: number, source: PngSource): void {
  const raw = new Uint8Array(rawBuffer.buffer, rawBuffer.byteOffset, rawBuffer.byteLength);
  const out = new Uint8Array(outBuffer.buffer, outBuffer.byteOffset, outBuffer.byteLength);
  const words = stride % 4 === 0 && outBuffer.byteOffset % 4 === 0 ? new Uint32Array(outBuffer.buffer, outBuffer.byteOffset, outBuffer.byteLength >> 2) : undefined;
  const rowWords = stride >> 2;
  for (let y = 0; y < height; y++) {
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    const up = dst - stride;
    const filter = raw[src - 1];
    out.set(raw.subarray(src, src + stride), dst);
    if (filter === 0 || (filter === 2 && y === 0)) continue;
    if (filter === 2 && words) {
      for (let k = dst >> 2, end = k + rowWords; k < end; k++) words[k] = addBytes(words[k]!, words[k - rowWords]!);
    } else if (filter === 1 && words && bpp === 4) {
      for (let k = (dst >> 2) + 1, end = (dst >> 2) + rowWords; k < end; k++) words[k] = addBytes(words[k]!, words[k - 1]!);
    } else if (filter === 1) {
      for (let i = dst + bpp, end = dst + stride; i < end; i++) out[i] = (out[i]! + out[i - bpp]!) & 0xff;
    } else if (filter === 2) {
      for (let i = dst, end = dst + stride; i < end; i++) out[i] = (out[i]! + out[i - stride]!) & 0xff;
    } else if (filter === 3) {
      for (let i = 0; i < stride; i++) {
        const left = i >= bpp ? out[dst + i - bpp]! : 0;
        const above = y > 0 ? out[up + i]! : 0;
        out[dst + i] = (out[dst + i]! + ((left + above) >> 1)) & 0xff;
      }
    } else if (filter === 4 && y > 0) {
      // Paeth. The first pixel has no left or upper-left neighbour: its predictor is the byte above.
      for (let i = dst; i < dst + bpp; i++) out[i] = out[i]! + out[i - stride]!;
      for (let i = dst + bpp, end = dst + stride; i < end; i++) {
        const a = out[i - bpp]!;
        const b = out[i - stride]!;
        const c = out[i - stride - bpp]!;
        let pa = b - c;
        if (pa < 0) pa = -pa;
        let pb = a - c;
        if (pb < 0) pb = -pb;
        let pc = a + b - c - c;
        if (pc < 0) pc = -pc;
        out[i] = out[i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c); // a Uint8Array store wraps mod 256
      }
    } else if (filter === 4) {
      // Paeth on the first row is Sub: only the left neighbour exists.
      for (let i = dst + bpp, end = dst + stride; i < end; i++) out[i] = out[i]! + out[i - bpp]!;
    } else {
      throw invalid(source, `row ${y} has unknown filter type ${filter}`);
    }
  }
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
