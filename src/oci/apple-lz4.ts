/**
 * Apple's COMPRESSION_LZ4 stream framing: how Tart compresses each 512 MiB piece of a disk
 * (`(data as NSData).compressed(using: .lz4)` to push, `OutputFilter(.decompress, using: .lz4)`
 * to pull; Sources/tart/OCI/Layerizer/DiskV2.swift). Not the LZ4 frame format (magic
 * 0x184D2204), and not independent blocks.
 *
 * What the framing is, and where it was confirmed:
 * - A stream is a sequence of blocks, each opening with a 4-byte magic; sizes are unaligned
 *   32-bit little-endian. Apple's documentation of COMPRESSION_LZ4 (Compression framework,
 *   developer.apple.com/documentation/compression/compression_lz4, and Algorithm.lz4):
 *   - `bv41` (62 76 34 31), decoded size, encoded size, then that many bytes of one LZ4 block;
 *   - `bv4-` (62 76 34 2d), ONE size, then that many plain bytes. An older wording of the same
 *     page said "followed by two sizes"; the current page says a single 32-bit value, and the
 *     independent readers below all read one (go-compressions/lz4 apple.go, which its README
 *     says decodes a real cirruslabs/macos-sequoia-base disk layer to the annotated size and
 *     SHA-256, and runs an oracle test against libcompression on macOS; LZ4CompressorX's
 *     Apple-format reader and writer, Objective-C; a GoodNotes reader in Python). One size it is.
 *   - `bv4$` (62 76 34 24) ends the stream; "do not read or write any further data beyond it".
 * - "A compressed block may refer to data from the previous block, so the (decoded) previous
 *   block must be available to the decoder" (same page). LZ4 offsets are 16 bits, so no match
 *   reaches more than 65535 bytes back. This decoder keeps the last 64 KiB of output whatever the
 *   block boundaries, so a reference into the block before the previous one (possible only if a
 *   block were smaller than 64 KiB) decodes too; nothing public says Apple does or does not.
 * - Block size: no public source states the size Apple's encoder uses. LZ4CompressorX writes
 *   64 KiB blocks for its Apple format, the go-compressions oracle test probes sizes around 64
 *   KiB, and 64 KiB is the LZ4 window. The decoder assumes none: it accepts any block up to one
 *   Tart piece (512 MiB) whose sizes are consistent (below). The encoder writes 64 KiB blocks,
 *   the smallest a reader could expect, so no Apple reader needs a bigger buffer for ours.
 * - Whether Apple's encoder ever writes `bv4-` blocks, and what it writes for empty input, is
 *   not documented; the decoder takes both kinds anywhere, and ours writes `bv4-` for a block
 *   LZ4 cannot shrink and only `bv4$` for empty input.
 */
import { MacvmError } from '../errors.js';
import { Lz4BlockError, decodeLz4Block, encodeLz4BlockInto, lz4BlockBound } from './lz4-block.js';
import { INPUT_BYTES, OUTPUT_AT, type WasmLz4Block, createWasmLz4Block } from './lz4-block-wasm.js';

/** The uncompressed size of each block our encoder writes. */
export const APPLE_LZ4_BLOCK_SIZE = 64 * 1024;
/** No block of a Tart layer can decode to more than the piece it is part of. */
export const APPLE_LZ4_MAX_BLOCK = 512 * 1024 * 1024;

const MAGIC_COMPRESSED = 0x31347662; // "bv41", read as a little-endian u32
const MAGIC_RAW = 0x2d347662; // "bv4-"
const MAGIC_END = 0x24347662; // "bv4$"
const HEADER_COMPRESSED = 12;
const HEADER_RAW = 8;
const HEADER_END = 4;

/** Decoded output kept for matches to reach back into. */
const WINDOW = 64 * 1024;
/** Output decoded between two slides of the window (and the most handed to onOutput at once). */
const SPAN = 4 * 1024 * 1024;

/**
 * Compresses one piece (Tart: up to 512 MiB) into Apple's LZ4 stream: 64 KiB blocks, each an LZ4
 * block that may use the block before it as its dictionary (as Apple's encoder does), or the
 * plain bytes when LZ4 cannot shrink them, then the end marker.
 */
export function encodeAppleLz4(data: Uint8Array): Buffer {
  const input = plainBytes(data);
  const out = new ChunkedOutput(input.length);
  let previousRaw = true;
  for (let start = 0; start < input.length; start += APPLE_LZ4_BLOCK_SIZE) {
    const end = Math.min(start + APPLE_LZ4_BLOCK_SIZE, input.length);
    const size = end - start;
    const room = out.reserve(HEADER_COMPRESSED + lz4BlockBound(size));
    const at = out.position;
    // The previous block is the dictionary, unless it went out plain: a reader that keeps only
    // compressed blocks' output would then have nothing to look back into, so we never ask it to.
    const dictStart = previousRaw ? start : Math.max(0, start - APPLE_LZ4_BLOCK_SIZE);
    const payloadEnd = encodeLz4BlockInto(input, start, end, dictStart, room, at + HEADER_COMPRESSED);
    const encoded = payloadEnd - at - HEADER_COMPRESSED;
    if (encoded < size) {
      writeU32(room, at, MAGIC_COMPRESSED);
      writeU32(room, at + 4, size);
      writeU32(room, at + 8, encoded);
      out.position = payloadEnd;
      previousRaw = false;
    } else {
      writeU32(room, at, MAGIC_RAW);
      writeU32(room, at + 4, size);
      room.set(input.subarray(start, end), at + HEADER_RAW);
      out.position = at + HEADER_RAW + size;
      previousRaw = true;
    }
  }
  const room = out.reserve(HEADER_END);
  writeU32(room, out.position, MAGIC_END);
  out.position += HEADER_END;
  return out.finish();
}

/**
 * Decodes an Apple LZ4 stream that arrives in pieces of any size (a network body: one byte at a
 * time, or a block header split across chunks), handing decoded output to `onOutput` as it goes.
 *
 * **The Uint8Array given to onOutput is a view into the decoder's buffer, valid only until
 * onOutput returns**: the decoder reuses that memory for later output (it is the window later
 * blocks copy from). Use it at once (hash it, write it with a synchronous call) or copy it. This
 * saves a copy of every decoded byte. Each write() hands over everything it decoded (at most
 * 4 MiB per call of onOutput, and a large plain block in parts as its bytes arrive).
 *
 * bv41 blocks are decoded by the WebAssembly decoder (./lz4-block-wasm.ts, 3-4x faster on disk
 * data), whose memory then holds the output and the window; decodeLz4Block takes over for a block
 * that does not fit there (larger than the span: never in a Tart layer) and for a block the
 * WebAssembly decoder refuses, so that the error says in words what is wrong.
 *
 * Any inconsistency throws MacvmError MACVM_IMAGE_CORRUPT naming the byte of the compressed
 * stream: an unknown magic, sizes that disagree with each other or with what the block decodes
 * to, a match reaching before the start of the output, input ending before `bv4$` (end()), and
 * bytes after `bv4$`. Apple's decoder stops at `bv4$`; Tart never writes anything after it, so
 * such bytes mean a damaged or mis-cut blob, and stopping silently would hide that. After an
 * error the decoder stays failed.
 */
export class AppleLz4Decoder {
  readonly #onOutput: (decoded: Uint8Array) => void;
  /** The WebAssembly block decoder, and its output area: where #output lives unless a block outgrew it. */
  readonly #wasm: WasmLz4Block | undefined = wasmBlockDecoder();
  readonly #home: Uint8Array = this.#wasm ? this.#wasm.memory.subarray(OUTPUT_AT, OUTPUT_AT + WINDOW + SPAN) : new Uint8Array(WINDOW + SPAN);
  /** Decoded output: [0, #end) is contiguous, the newest bytes last; [#emitted, #end) not yet handed over. */
  #output = this.#home;
  #end = 0;
  #emitted = 0;
  #decoded = 0;
  /** Compressed-stream bytes consumed before the current write() call. */
  #streamOffset = 0;

  #state: 'header' | 'payload' | 'raw' | 'ended' | 'failed' = 'header';
  #failure: unknown;
  /** The block being read: where its magic began in the stream, its header bytes so far. */
  #blockAt = 0;
  readonly #header = new Uint8Array(HEADER_COMPRESSED);
  #headerHave = 0;
  #decodedSize = 0;
  #encodedSize = 0;
  /** A compressed block's payload when it spans chunks. */
  #payload: Uint8Array = new Uint8Array(0);
  #payloadHave = 0;
  #rawLeft = 0;

  constructor(onOutput: (decoded: Uint8Array) => void) {
    this.#onOutput = onOutput;
  }

  /** Bytes decoded so far (all of them handed to onOutput once write() returns). */
  get decodedBytes(): number {
    return this.#decoded;
  }

  write(data: Uint8Array): void {
    if (this.#state === 'failed') throw this.#failure;
    const chunk = plainBytes(data);
    try {
      let at = 0;
      while (at < chunk.length) {
        if (this.#state === 'header') at = this.#readHeader(chunk, at);
        else if (this.#state === 'payload') at = this.#readPayload(chunk, at);
        else if (this.#state === 'raw') at = this.#readRaw(chunk, at);
        else throw corrupt(`${chunk.length - at} more bytes follow the end marker bv4$ (a stream ends there)`, this.#streamOffset + at);
      }
      this.#streamOffset += chunk.length;
      this.#emit();
    } catch (error) {
      this.#state = 'failed';
      this.#failure = error;
      throw error;
    }
  }

  /** Declares the stream complete: throws if it stopped before `bv4$` (between or inside blocks). */
  end(): void {
    if (this.#state === 'failed') throw this.#failure;
    if (this.#state === 'ended') return;
    const where = this.#state === 'header' && this.#headerHave === 0 ? 'before its end marker bv4$' : 'in the middle of a block (truncated)';
    this.#state = 'failed';
    this.#failure = corrupt(`stream stops ${where}`, this.#streamOffset);
    throw this.#failure;
  }

  #readHeader(chunk: Uint8Array, at: number): number {
    if (this.#headerHave === 0) this.#blockAt = this.#streamOffset + at;
    const header = this.#header;
    let need = this.#headerHave < 4 ? 4 : headerLength(readU32(header, 0));
    while (this.#headerHave < need && at < chunk.length) {
      header[this.#headerHave++] = chunk[at++]!;
      if (this.#headerHave === 4) {
        need = headerLength(readU32(header, 0));
        if (need === 0) throw corrupt(`unknown block magic ${hex(header.subarray(0, 4))} (expected bv41, bv4- or bv4$)`, this.#blockAt);
      }
    }
    if (this.#headerHave < need) return at;
    this.#headerHave = 0;
    const magic = readU32(header, 0);
    if (magic === MAGIC_END) {
      this.#state = 'ended';
      return at;
    }
    const decodedSize = readU32(header, 4);
    if (decodedSize > APPLE_LZ4_MAX_BLOCK) throw corrupt(`a block claims to decode to ${decodedSize} bytes, more than a 512 MiB Tart piece`, this.#blockAt);
    this.#decodedSize = decodedSize;
    if (magic === MAGIC_RAW) {
      this.#makeRoom(decodedSize);
      this.#rawLeft = decodedSize;
      this.#state = 'raw';
      return at;
    }
    const encodedSize = readU32(header, 8);
    // LZ4 cannot grow data past its bound, nor shrink it more than ~255:1 (one length byte per
    // 255 bytes of match); sizes outside both are a damaged header, caught before any allocation.
    if (encodedSize > lz4BlockBound(decodedSize) || decodedSize > encodedSize * 255 + 32) {
      throw corrupt(`a bv41 block's sizes are inconsistent (${encodedSize} encoded bytes cannot decode to ${decodedSize})`, this.#blockAt);
    }
    this.#encodedSize = encodedSize;
    if (chunk.length - at >= encodedSize) {
      // The whole payload is in this chunk: decode it where it lies.
      this.#decodeBlock(chunk, at, at + encodedSize, this.#streamOffset + at);
      return at + encodedSize;
    }
    // Gathered where the WebAssembly decoder reads its input, when it fits there.
    if (this.#wasm && encodedSize <= INPUT_BYTES) this.#payload = this.#wasm.memory.subarray(0, INPUT_BYTES);
    else if (this.#payload.length < encodedSize) this.#payload = new Uint8Array(Math.max(encodedSize, 2 * this.#payload.length));
    this.#payloadHave = 0;
    this.#state = 'payload';
    return at;
  }

  #readPayload(chunk: Uint8Array, at: number): number {
    const take = Math.min(this.#encodedSize - this.#payloadHave, chunk.length - at);
    this.#payload.set(chunk.subarray(at, at + take), this.#payloadHave);
    this.#payloadHave += take;
    if (this.#payloadHave === this.#encodedSize) {
      this.#decodeBlock(this.#payload, 0, this.#encodedSize, this.#blockAt + HEADER_COMPRESSED);
      this.#state = 'header';
    }
    return at + take;
  }

  #readRaw(chunk: Uint8Array, at: number): number {
    const take = Math.min(this.#rawLeft, chunk.length - at);
    this.#output.set(chunk.subarray(at, at + take), this.#end);
    this.#end += take;
    this.#decoded += take;
    this.#rawLeft -= take;
    if (this.#rawLeft === 0) this.#state = 'header';
    return at + take;
  }

  /** Decodes the current bv41 block from `source[start, end)`, which sits at `streamAt` in the stream. */
  #decodeBlock(source: Uint8Array, start: number, end: number, streamAt: number): void {
    const size = this.#decodedSize;
    this.#makeRoom(size);
    const wasm = this.#wasm;
    if (wasm && this.#output === this.#home && end - start <= INPUT_BYTES) {
      if (source.buffer !== wasm.memory.buffer || source.byteOffset + start !== 0) wasm.memory.set(source.subarray(start, end), 0);
      const outputStart = OUTPUT_AT + this.#end;
      const decodedTo = wasm.decode(0, end - start, outputStart, outputStart + size, OUTPUT_AT);
      if (decodedTo >= 0) return this.#accept(decodedTo - outputStart);
      // Not valid: decodeLz4Block reads the same block from the same window and says why. (Should
      // it find the block valid, its output stands: it is the reference the other is tested against.)
    }
    let produced: number;
    try {
      produced = decodeLz4Block(source, start, end, this.#output, this.#end, this.#end + size, 0) - this.#end;
    } catch (error) {
      if (!(error instanceof Lz4BlockError)) throw error;
      throw corrupt(`the bv41 block that starts at byte ${this.#blockAt} does not decode: ${error.message}`, streamAt + (error.inputOffset - start));
    }
    this.#accept(produced);
  }

  /** A bv41 block decoded to `produced` bytes at #end: they must be what its header says. */
  #accept(produced: number): void {
    const size = this.#decodedSize;
    if (produced !== size) throw corrupt(`the bv41 block decodes to ${produced} bytes but its header says ${size}`, this.#blockAt);
    this.#end += size;
    this.#decoded += size;
  }

  /**
   * Makes room for `size` more bytes of output after #end: hands over what is pending, then
   * moves the last 64 KiB (the window) to the front, growing the buffer for a block bigger than
   * the span. Only here is memory already handed to onOutput overwritten.
   */
  #makeRoom(size: number): void {
    if (this.#end + size <= this.#output.length) return;
    this.#emit();
    const keep = Math.min(this.#end, WINDOW);
    // Back home (the WebAssembly decoder's memory) after a block that outgrew it, when it fits again.
    const next = keep + size <= this.#home.length ? this.#home : keep + size <= this.#output.length ? this.#output : new Uint8Array(WINDOW + Math.max(SPAN, size));
    if (next === this.#output) next.copyWithin(0, this.#end - keep, this.#end);
    else next.set(this.#output.subarray(this.#end - keep, this.#end));
    this.#output = next;
    this.#end = keep;
    this.#emitted = keep;
  }

  #emit(): void {
    if (this.#end === this.#emitted) return;
    const view = this.#output.subarray(this.#emitted, this.#end);
    this.#emitted = this.#end;
    this.#onOutput(view);
  }
}

/** The WebAssembly block decoder, or none where WebAssembly cannot run (then decodeLz4Block does all). */
function wasmBlockDecoder(): WasmLz4Block | undefined {
  try {
    return createWasmLz4Block(WINDOW + SPAN);
  } catch {
    return undefined;
  }
}

/** Decodes a whole Apple LZ4 stream held in memory (tests, small layers). */
export function decodeAppleLz4(input: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  const decoder = new AppleLz4Decoder((decoded) => parts.push(Buffer.from(decoded)));
  decoder.write(input);
  decoder.end();
  return Buffer.concat(parts, decoder.decodedBytes);
}

/**
 * The same bytes as a plain Uint8Array. Node hands out Buffers (a Uint8Array subclass); the
 * codec's loops run measurably faster when they only ever see one kind of array.
 */
function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function corrupt(what: string, streamOffset: number): MacvmError {
  return new MacvmError('MACVM_IMAGE_CORRUPT', `LZ4 stream is corrupt at byte ${streamOffset}: ${what}.`, {
    hint:
      'The layer is damaged, or it is not Apple LZ4 (COMPRESSION_LZ4) data, which Tart disk.v2 layers are. ' +
      'Pull the image again; if the same byte fails again, the image in the registry is broken: push it again from a good copy.',
    details: { streamOffset },
  });
}

/** Header length for a block magic, or 0 for an unknown one. */
function headerLength(magic: number): number {
  if (magic === MAGIC_COMPRESSED) return HEADER_COMPRESSED;
  if (magic === MAGIC_RAW) return HEADER_RAW;
  if (magic === MAGIC_END) return HEADER_END;
  return 0;
}

function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 255;
  bytes[at + 1] = (value >>> 8) & 255;
  bytes[at + 2] = (value >>> 16) & 255;
  bytes[at + 3] = value >>> 24;
}

function hex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString('hex')}`;
}

/**
 * The encoder's output: filled chunk by chunk (4 MiB, or less for a small input) and joined at
 * the end, so a 512 MiB piece of zeros that compresses to 2 MiB never holds a 512 MiB buffer.
 */
class ChunkedOutput {
  #chunks: Buffer[] = [];
  #current: Buffer;
  position = 0;

  constructor(inputLength: number) {
    const worstCase = inputLength + Math.ceil(inputLength / APPLE_LZ4_BLOCK_SIZE) * (HEADER_COMPRESSED + 16 + APPLE_LZ4_BLOCK_SIZE / 255) + HEADER_END;
    this.#current = Buffer.allocUnsafe(Math.min(Math.ceil(worstCase), SPAN));
  }

  /** The chunk to write into at `position`, with at least `size` bytes of room. */
  reserve(size: number): Buffer {
    if (this.position + size > this.#current.length) {
      this.#chunks.push(this.#current.subarray(0, this.position));
      this.#current = Buffer.allocUnsafe(Math.max(SPAN, size));
      this.position = 0;
    }
    return this.#current;
  }

  finish(): Buffer {
    const last = this.#current.subarray(0, this.position);
    if (this.#chunks.length === 0) return last.length * 2 >= this.#current.length ? last : Buffer.from(last);
    return Buffer.concat([...this.#chunks, last]);
  }
}
