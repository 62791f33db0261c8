import { describe, expect, it } from 'vitest';
import { LZ4_MAX_OFFSET, Lz4BlockError, decodeLz4Block, encodeLz4Block, lz4BlockBound } from '../../src/oci/lz4-block.js';
import { noise } from '../support/noise.js';


const text = new TextEncoder().encode('Sphinx of black quartz, judge my vow; pack my box with five dozen liquor jugs.\n'.repeat(900));

function mixed(): Uint8Array {
  const parts = [noise(3000, 1), new Uint8Array(20000), text.subarray(0, 9000), noise(7, 2), new Uint8Array(5), text.subarray(100, 40000), noise(20000, 3)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function roundTrip(data: Uint8Array): Uint8Array {
  const block = encodeLz4Block(data);
  expect(block.length).toBeLessThanOrEqual(lz4BlockBound(data.length));
  const out = new Uint8Array(data.length);
  expect(decodeLz4Block(block, 0, block.length, out, 0, out.length)).toBe(data.length);
  return out;
}

interface Sequence {
  literals: number;
  /** Output position where the match starts, its offset and length (absent for the last sequence). */
  matchAt?: number;
  offset?: number;
  length?: number;
}

/** Reads a block's sequences (trusting it: for checking what the encoder wrote). */
function sequencesOf(block: Uint8Array): Sequence[] {
  const sequences: Sequence[] = [];
  let ip = 0;
  let op = 0;
  while (ip < block.length) {
    const token = block[ip++]!;
    let literals = token >> 4;
    if (literals === 15) for (let more = 255; more === 255; literals += more) more = block[ip++]!;
    ip += literals;
    op += literals;
    if (ip >= block.length) {
      sequences.push({ literals });
      break;
    }
    const offset = block[ip]! | (block[ip + 1]! << 8);
    ip += 2;
    let length = token & 15;
    if (length === 15) for (let more = 255; more === 255; length += more) more = block[ip++]!;
    length += 4;
    sequences.push({ literals, matchAt: op, offset, length });
    op += length;
  }
  return sequences;
}

describe('LZ4 block round trips', () => {
  it.each([
    ['zeros', new Uint8Array(200_000)],
    ['random', noise(100_000, 7)],
    ['text', text],
    ['mixed', mixed()],
    ['a 3-byte pattern', new TextEncoder().encode('abc'.repeat(30_000))],
  ])('%s', (_name, data) => {
    expect(Buffer.from(roundTrip(data)).equals(Buffer.from(data))).toBe(true);
  });

  it('every size from 0 to 40 bytes, compressible or not', () => {
    for (let size = 0; size <= 40; size++) {
      for (const data of [new Uint8Array(size), noise(size, size)]) {
        expect(Array.from(roundTrip(data))).toEqual(Array.from(data));
      }
    }
  });

  it('compresses zeros and text, and keeps random data within the bound', () => {
    expect(encodeLz4Block(new Uint8Array(1 << 20)).length).toBeLessThan(5000);
    expect(encodeLz4Block(text).length).toBeLessThan(text.length / 20);
    expect(encodeLz4Block(noise(65536, 9)).length).toBeLessThanOrEqual(lz4BlockBound(65536));
  });

  it('keeps the end-of-block rules: last 5 bytes literals, last match starting 12 or more bytes before the end', () => {
    for (const data of [new Uint8Array(1000), text.subarray(0, 5000), mixed(), new Uint8Array(13), new TextEncoder().encode('abcdabcdabcdabcdabcd')]) {
      const sequences = sequencesOf(encodeLz4Block(data));
      const last = sequences.at(-1)!;
      expect(last.matchAt).toBeUndefined();
      if (data.length > 12) expect(last.literals).toBeGreaterThanOrEqual(5);
      for (const sequence of sequences) {
        if (sequence.matchAt === undefined) continue;
        expect(sequence.matchAt).toBeLessThanOrEqual(data.length - 12);
        expect(sequence.matchAt + sequence.length!).toBeLessThanOrEqual(data.length - 5);
        expect(sequence.offset).toBeGreaterThan(0);
        expect(sequence.offset).toBeLessThanOrEqual(LZ4_MAX_OFFSET);
      }
    }
  });

  it('never emits an offset past 65535, even when a repeat lies exactly 64 KiB back', () => {
    const pattern = noise(2000, 11);
    const data = new Uint8Array(200_000);
    data.set(noise(200_000, 12));
    data.set(pattern, 1000);
    data.set(pattern, 1000 + 65536);
    data.set(pattern, 1000 + 65536 + 65535);
    const block = encodeLz4Block(data);
    for (const sequence of sequencesOf(block)) if (sequence.offset !== undefined) expect(sequence.offset).toBeLessThanOrEqual(LZ4_MAX_OFFSET);
    expect(Array.from(roundTrip(data).subarray(60_000, 140_000))).toEqual(Array.from(data.subarray(60_000, 140_000)));
  });
});

describe('LZ4 block with a prefix dictionary', () => {
  it('encodes a block as references into the bytes before it, and decodes it against them', () => {
    const dictionary = noise(30_000, 21);
    const data = new Uint8Array(60_000);
    data.set(dictionary);
    data.set(dictionary, 30_000); // the block repeats its dictionary
    const block = encodeLz4Block(data, 30_000, 60_000, 0);
    expect(block.length).toBeLessThan(200);
    expect(sequencesOf(block).some((s) => s.offset !== undefined && s.offset > (s.matchAt ?? 0))).toBe(true);

    const out = new Uint8Array(60_000);
    out.set(dictionary);
    expect(decodeLz4Block(block, 0, block.length, out, 30_000, 60_000, 0)).toBe(60_000);
    expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
    // Without the dictionary, the same block must be refused, not decoded into garbage.
    expect(() => decodeLz4Block(block, 0, block.length, new Uint8Array(30_000), 0, 30_000)).toThrow(Lz4BlockError);
  });

  it('leaves the dictionary alone when dictStart equals start', () => {
    const data = new Uint8Array(40_000);
    data.set(text.subarray(0, 20_000));
    data.set(text.subarray(0, 20_000), 20_000);
    const block = encodeLz4Block(data, 20_000, 40_000);
    const out = new Uint8Array(20_000);
    expect(decodeLz4Block(block, 0, block.length, out, 0, 20_000)).toBe(20_000);
    expect(Buffer.from(out).equals(Buffer.from(data.subarray(20_000)))).toBe(true);
  });
});

describe('LZ4 block decoding, hand-built', () => {
  const decode = (block: number[], size: number, window: number[] = []) => {
    const out = new Uint8Array(window.length + size);
    out.set(window);
    const end = decodeLz4Block(Uint8Array.from(block), 0, block.length, out, window.length, out.length);
    return Array.from(out.subarray(window.length, end));
  };

  it('repeats an overlapping match: offset 1 is a run, offset 3 a pattern', () => {
    // token 1 literal + match 15+x: literal 7, offset 1, length 4+15+20 = 39; then 0 literals end
    expect(decode([0x1f, 7, 1, 0, 20, 0x00], 40)).toEqual(new Array(40).fill(7));
    // 3 literals 'abc', offset 3, length 4+15+40 = 59, final literal 'Z'
    const got = decode([0x3f, 97, 98, 99, 3, 0, 40, 0x10, 90], 63);
    expect(String.fromCharCode(...got)).toBe('abc'.repeat(21).slice(0, 62) + 'Z');
  });

  it('copies a long literal run and a long non-overlapping match', () => {
    const literals = Array.from(noise(300, 5));
    // 300 literals: 15 + 255 + 30; match offset 300 length 4+15+100 = 119; last: 0 literals
    const block = [0xff, 255, 30, ...literals, 0x2c, 0x01, 100, 0x00];
    expect(decode(block, 419)).toEqual([...literals, ...literals.slice(0, 119)]);
  });

  it('reads matches from the window before the output start', () => {
    expect(decode([0x00, 5, 0, 0x00], 4, [1, 2, 3, 4, 5])).toEqual([1, 2, 3, 4]);
  });
});

describe('LZ4 block decoding refuses corrupt blocks', () => {
  const cases: [string, number[], number, string][] = [
    ['an empty block', [], 10, 'empty block'],
    ['offset 0', [0x10, 1, 0, 0, 0x00], 10, 'offset 0'],
    ['an offset before the window', [0x10, 1, 2, 0, 0x00], 10, 'before the start of the window'],
    ['literals past the input', [0x50, 1, 2], 10, 'run past the end of the block'],
    ['literals past the output', [0x50, 1, 2, 3, 4, 5], 4, 'overflow'],
    ['a match past the output', [0x1f, 1, 1, 0, 100, 0x00], 50, 'overflows'],
    ['a cut-off offset', [0x10, 1, 1], 10, 'cut off'],
    ['a cut-off literal length', [0xf0, 255], 1000, 'literal length runs past'],
    ['a cut-off match length', [0x1f, 1, 1, 0, 255], 1000, 'match length runs past'],
    ['a block that ends with a match', [0x10, 1, 1, 0], 10, 'ends after a match'],
  ];
  it.each(cases)('%s', (_name, block, size, message) => {
    const out = new Uint8Array(size + 16).fill(0xee);
    let error: unknown;
    try {
      decodeLz4Block(Uint8Array.from(block), 0, block.length, out, 8, 8 + size, 8);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(Lz4BlockError);
    expect((error as Error).message).toContain(message);
    expect(Array.from(out.subarray(0, 8))).toEqual(new Array(8).fill(0xee));
    expect(Array.from(out.subarray(8 + size))).toEqual(new Array(8).fill(0xee));
  });

  it('damaged blocks never write outside the output range and never hang', () => {
    const source = mixed().subarray(0, 30_000);
    const good = encodeLz4Block(source);
    const random = noise(200_000, 99);
    let refused = 0;
    for (let trial = 0; trial < 1500; trial++) {
      const bad = Uint8Array.from(good);
      const flips = 1 + (random[trial]! % 4);
      for (let f = 0; f < flips; f++) {
        const at = (random[trial * 8 + f]! * 256 + random[trial * 8 + f + 4]!) % bad.length;
        bad[at] = random[trial * 8 + f + 1]!;
      }
      const cut = random[trial * 3 + 7]! % 5 === 0 ? bad.length - (random[trial]! % 50) : bad.length;
      const out = new Uint8Array(1024 + source.length + 1024).fill(0xee);
      out.set(noise(1024, trial), 0); // a window to reach back into
      try {
        const end = decodeLz4Block(bad, 0, Math.max(0, cut), out, 1024, 1024 + source.length, 0);
        expect(end).toBeLessThanOrEqual(1024 + source.length);
      } catch (error) {
        expect(error).toBeInstanceOf(Lz4BlockError);
        refused++;
      }
      expect(out.subarray(1024 + source.length).every((b) => b === 0xee)).toBe(true);
    }
    expect(refused).toBeGreaterThan(100);
  }, 30_000);
});
