/**
 * The raw LZ4 *block* format (lz4/doc/lz4_Block_format.md), which Apple's COMPRESSION_LZ4 stream
 * (./apple-lz4.ts) carries inside its bv41 blocks. Written from the format description:
 *
 * - A block is a series of sequences. A sequence is a token byte (high nibble: literal count,
 *   low nibble: match length - 4), more literal-count bytes when the nibble is 15 (each added;
 *   a byte below 255 ends the run), the literals, a 2-byte little-endian offset (1..65535 back
 *   from the current output position), more match-length bytes when the nibble is 15.
 * - The last sequence has literals only and ends the block. The last 5 bytes of a block are
 *   literals and the last match starts at least 12 bytes before the end; the encoder keeps both
 *   rules, the decoder does not need them for safety and does not insist on them.
 * - A match may reach back before the block into earlier output (a dictionary or the previous
 *   block), which is how Apple's stream links its blocks; a match whose offset is shorter than its
 *   length repeats the bytes it is copying (offset 1 is a run of one byte: how zeros compress).
 */

/** LZ4 offsets are 16 bits: a match reaches back at most this far. */
export const LZ4_MAX_OFFSET = 65535;
const MIN_MATCH = 4;
/** The last 5 bytes of a block are always literals... */
const LAST_LITERALS = 5;
/** ...and the last match starts at least 12 bytes before the end (so a block under 13 bytes is all literals). */
const MF_LIMIT = 12;

/** A decode failure, with where in the input it was found, for the caller to place in its own stream. */
export class Lz4BlockError extends Error {
  constructor(
    message: string,
    /** Index into the input array where the bad sequence was read. */
    readonly inputOffset: number,
  ) {
    super(message);
    this.name = 'Lz4BlockError';
  }
}

/** The most an LZ4 block of `length` input bytes can take (all literals, plus the length bytes and a token). */
export function lz4BlockBound(length: number): number {
  return length + Math.floor(length / 255) + 16;
}

/**
 * Decodes the LZ4 block `input[inputStart, inputEnd)` into `output` at `outputStart`, writing no
 * byte at or beyond `outputEnd`. Bytes of `output` from `dictStart` up to `outputStart` are the
 * window matches may reach back into (earlier output). Returns the end of the decoded bytes.
 *
 * Every length and offset is checked before it is used, so a corrupt block throws an
 * Lz4BlockError and never reads or writes outside those ranges; each pass of the loop consumes
 * at least one input byte, so it always ends. Bytes between the returned end and `outputEnd` may
 * be overwritten (short copies write up to 3 bytes past themselves when there is room).
 */
export function decodeLz4Block(
  input: Uint8Array,
  inputStart: number,
  inputEnd: number,
  output: Uint8Array,
  outputStart: number,
  outputEnd: number,
  dictStart = 0,
): number {
  if (!(0 <= inputStart && inputStart <= inputEnd && inputEnd <= input.length)) throw new RangeError('decodeLz4Block: input range outside the input');
  if (!(0 <= dictStart && dictStart <= outputStart && outputStart <= outputEnd && outputEnd <= output.length)) {
    throw new RangeError('decodeLz4Block: output range outside the output');
  }
  if (inputStart === inputEnd) throw new Lz4BlockError('empty block (a block holds at least one token)', inputStart);
  // Short copies go 4 bytes at a time through DataViews (one unaligned load and store each) when
  // there is room for the up to 3 bytes they write past the copy; later sequences overwrite those.
  const source = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const target = new DataView(output.buffer, output.byteOffset, output.byteLength);
  let ip = inputStart;
  let op = outputStart;
  for (;;) {
    if (ip >= inputEnd) throw new Lz4BlockError('block ends after a match; its last sequence must be literals only', ip);
    const token = input[ip++]!;

    let literals = token >>> 4;
    if (literals === 15) {
      let more: number;
      do {
        if (ip >= inputEnd) throw new Lz4BlockError('literal length runs past the end of the block', ip);
        more = input[ip++]!;
        literals += more;
      } while (more === 255);
    }
    if (literals > 0) {
      if (literals > inputEnd - ip) throw new Lz4BlockError(`${literals} literals run past the end of the block`, ip);
      if (literals > outputEnd - op) throw new Lz4BlockError(`${literals} literals overflow the block's decoded size`, ip);
      if (literals <= 16 && inputEnd - ip >= literals + 3 && outputEnd - op >= literals + 3) {
        for (let i = 0; i < literals; i += 4) target.setInt32(op + i, source.getInt32(ip + i, true), true);
      } else if (literals < 16) {
        for (let i = 0; i < literals; i++) output[op + i] = input[ip + i]!;
      } else {
        output.set(input.subarray(ip, ip + literals), op);
      }
      ip += literals;
      op += literals;
    }
    if (ip === inputEnd) return op; // the last sequence: literals only

    if (inputEnd - ip < 2) throw new Lz4BlockError('match offset cut off by the end of the block', ip);
    const offset = input[ip]! | (input[ip + 1]! << 8);
    if (offset === 0) throw new Lz4BlockError('match offset 0', ip);
    if (offset > op - dictStart) throw new Lz4BlockError(`match offset ${offset} reaches before the start of the window`, ip);
    ip += 2;

    let length = token & 15;
    if (length === 15) {
      let more: number;
      do {
        if (ip >= inputEnd) throw new Lz4BlockError('match length runs past the end of the block', ip);
        more = input[ip++]!;
        length += more;
      } while (more === 255);
    }
    length += MIN_MATCH;
    if (length > outputEnd - op) throw new Lz4BlockError(`match of ${length} bytes overflows the block's decoded size`, ip);
    if (offset >= 4 && length <= 32 && outputEnd - op >= length + 3) {
      // 4 bytes at a time: with offset >= 4 each load reads only bytes already final, so even an
      // overlapping match (a repeating pattern) comes out right.
      const ref = op - offset;
      for (let i = 0; i < length; i += 4) target.setInt32(op + i, target.getInt32(ref + i, true), true);
    } else {
      copyMatch(output, op, offset, length);
    }
    op += length;
  }
}

/** Copies `length` bytes from `offset` back, repeating them when the match overlaps itself. */
function copyMatch(output: Uint8Array, op: number, offset: number, length: number): void {
  const ref = op - offset;
  if (length < 32) {
    // Short (most matches in code and text): a byte loop beats setting up a native copy, and a
    // forward loop repeats overlaps correctly. Every match has at least 4 bytes: copy those unrolled.
    output[op] = output[ref]!;
    output[op + 1] = output[ref + 1]!;
    output[op + 2] = output[ref + 2]!;
    output[op + 3] = output[ref + 3]!;
    for (let i = 4; i < length; i++) output[op + i] = output[ref + i]!;
  } else if (offset >= length) {
    output.copyWithin(op, ref, ref + length);
  } else if (offset === 1) {
    output.fill(output[ref]!, op, op + length); // a run of one byte: zeros on a disk image
  } else {
    // The match repeats a pattern `offset` bytes long. Copy it once, then double the copied part.
    output.copyWithin(op, ref, op);
    let copied = offset;
    while (copied < length) {
      const chunk = Math.min(copied, length - copied);
      output.copyWithin(op + copied, op, op + chunk);
      copied += chunk;
    }
  }
}

/**
 * 2^14 slots (64 KiB): small enough to stay in the CPU cache. Measured on executable code, 2^16
 * slots compress 1.5 % better at about two thirds of the speed.
 */
const HASH_LOG = 14;
/**
 * Where each 4-byte sequence was last seen, by hash: shared by every call (encoding is
 * synchronous, so calls never interleave). A stale entry — another input, an older call — is
 * harmless: a candidate is used only if it lies in the allowed window and its bytes are checked
 * equal. Keeping it between calls is what lets encodeAppleLz4 find matches in the previous block
 * without re-hashing it.
 */
const lastSeen = new Int32Array(1 << HASH_LOG).fill(-1);
/** After 2^6 failed probes the search starts skipping ahead, so incompressible data costs little. */
const SKIP_TRIGGER = 6;

/** A DataView reads 4 unaligned bytes as one load: the encoder's hashing and comparing go through one. */
function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hash4(sequence: number): number {
  return Math.imul(sequence, 2654435761) >>> (32 - HASH_LOG);
}

/**
 * Encodes `input[start, end)` as one LZ4 block. Matches may reach back to `dictStart` (at most
 * LZ4_MAX_OFFSET bytes): `dictStart < start` uses the bytes before the block as a prefix
 * dictionary, as a linked block does. A greedy matcher over a hash table, in the manner of LZ4's
 * fast mode. Returns a view of a buffer of lz4BlockBound(end - start) bytes.
 */
export function encodeLz4Block(input: Uint8Array, start = 0, end = input.length, dictStart = start): Uint8Array {
  if (!(0 <= dictStart && dictStart <= start && start <= end && end <= input.length)) throw new RangeError('encodeLz4Block: range outside the input');
  const output = new Uint8Array(lz4BlockBound(end - start));
  // Make the dictionary findable: this call may not follow an encode of the bytes before it.
  const view = viewOf(input);
  const from = Math.max(dictStart, start - LZ4_MAX_OFFSET);
  for (let at = from; at + 4 <= start; at++) lastSeen[hash4(view.getInt32(at, true))] = at;
  return output.subarray(0, encodeLz4BlockInto(input, start, end, dictStart, output, 0));
}

/**
 * encodeLz4Block without the allocation and without hashing the dictionary first (for a caller
 * that has just encoded the bytes before `start`, so the table already knows them). Writes at
 * `output[outputStart]`, which must have lz4BlockBound(end - start) bytes of room; returns the
 * end of what it wrote.
 */
export function encodeLz4BlockInto(input: Uint8Array, start: number, end: number, dictStart: number, output: Uint8Array, outputStart: number): number {
  const view = viewOf(input);
  let op = outputStart;
  let anchor = start; // first byte not yet written (as literals or inside a match)
  if (end - start > MF_LIMIT) {
    const matchLimit = end - LAST_LITERALS; // a match ends at or before this
    const lastMatchStart = end - MF_LIMIT; // and starts at or before this
    let ip = start;
    search: for (;;) {
      let ref: number;
      let attempts = 1 << SKIP_TRIGGER;
      let step = 1;
      for (;;) {
        if (ip > lastMatchStart) break search;
        const sequence = view.getInt32(ip, true);
        const slot = hash4(sequence);
        ref = lastSeen[slot]!;
        lastSeen[slot] = ip;
        if (ref >= dictStart && ref < ip && ip - ref <= LZ4_MAX_OFFSET && view.getInt32(ref, true) === sequence) break;
        ip += step;
        step = attempts++ >>> SKIP_TRIGGER;
      }
      // Widen the match backwards over literals it also covers.
      while (ip > anchor && ref > dictStart && input[ip - 1] === input[ref - 1]) {
        ip--;
        ref--;
      }
      const offset = ip - ref;
      let matchEnd = ip + MIN_MATCH;
      for (;;) {
        if (matchEnd + 4 > matchLimit) {
          while (matchEnd < matchLimit && input[matchEnd] === input[matchEnd - offset]) matchEnd++;
          break;
        }
        // 4 bytes at a time; where they differ, the lowest differing byte (little-endian) ends the match.
        const diff = view.getInt32(matchEnd, true) ^ view.getInt32(matchEnd - offset, true);
        if (diff === 0) {
          matchEnd += 4;
          continue;
        }
        matchEnd += (31 - Math.clz32(diff & -diff)) >>> 3;
        break;
      }
      op = writeSequence(output, op, input, anchor, ip - anchor, offset, matchEnd - ip);
      ip = matchEnd;
      anchor = ip;
      if (ip > lastMatchStart) break;
      // Remember a position inside the match too, so the next repeat of it is found.
      lastSeen[hash4(view.getInt32(ip - 2, true))] = ip - 2;
    }
  }
  return writeLastLiterals(output, op, input, anchor, end - anchor);
}

function writeLength(output: Uint8Array, op: number, rest: number): number {
  while (rest >= 255) {
    output[op++] = 255;
    rest -= 255;
  }
  output[op++] = rest;
  return op;
}

function writeLiterals(output: Uint8Array, op: number, input: Uint8Array, from: number, count: number): number {
  if (count < 16) {
    for (let i = 0; i < count; i++) output[op + i] = input[from + i]!;
  } else {
    output.set(input.subarray(from, from + count), op);
  }
  return op + count;
}

function writeSequence(output: Uint8Array, op: number, input: Uint8Array, literalsFrom: number, literals: number, offset: number, matchLength: number): number {
  const tokenAt = op++;
  let token: number;
  if (literals >= 15) {
    token = 15 << 4;
    op = writeLength(output, op, literals - 15);
  } else {
    token = literals << 4;
  }
  op = writeLiterals(output, op, input, literalsFrom, literals);
  output[op++] = offset & 255;
  output[op++] = offset >>> 8;
  const extra = matchLength - MIN_MATCH;
  if (extra >= 15) {
    token |= 15;
    op = writeLength(output, op, extra - 15);
  } else {
    token |= extra;
  }
  output[tokenAt] = token;
  return op;
}

function writeLastLiterals(output: Uint8Array, op: number, input: Uint8Array, from: number, count: number): number {
  if (count >= 15) {
    output[op++] = 15 << 4;
    op = writeLength(output, op, count - 15);
  } else {
    output[op++] = count << 4;
  }
  return writeLiterals(output, op, input, from, count);
}
