import { describe, expect, it } from 'vitest';
import { APPLE_LZ4_BLOCK_SIZE, AppleLz4Decoder, decodeAppleLz4, encodeAppleLz4 } from '../../src/oci/apple-lz4.js';
import { Lz4BlockError, decodeLz4Block, encodeLz4Block } from '../../src/oci/lz4-block.js';
import { appleLz4FromLz4Cli, lz4CliDecodeAppleLz4 } from '../support/lz4-cli-apple.js';
import { macvmErrorOf } from '../support/macvm-error.js';
import { noise } from '../support/noise.js';


const text = Buffer.from('Pack my box with five dozen liquor jugs. The five boxing wizards jump quickly.\n'.repeat(4000));
/** A disk-like mix: code-ish noise, zero runs, text, short repeats, all across block boundaries. */
const mixed = Buffer.concat([noise(70_000, 1), Buffer.alloc(150_000), text.subarray(0, 100_000), noise(3, 2), Buffer.from('xyz'.repeat(20_000)), noise(40_000, 3)]);
/** Random blocks that repeat 20 KB later and 100 KB later: only cross-block matches compress them. */
const linked = (() => {
  const pattern = noise(20_000, 4);
  return Buffer.concat([pattern, noise(40_000, 5), pattern, noise(60_000, 6), pattern, pattern]);
})();

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(value);
  return out;
}
const compressed = (decodedSize: number, payload: number[] | Uint8Array) => Buffer.concat([Buffer.from('bv41', 'latin1'), u32(decodedSize), u32(payload.length), Buffer.from(payload)]);
const raw = (bytes: Uint8Array) => Buffer.concat([Buffer.from('bv4-', 'latin1'), u32(bytes.length), Buffer.from(bytes)]);
const END = Buffer.from('bv4$', 'latin1');

interface AppleBlock {
  kind: 'bv41' | 'bv4-';
  decodedSize: number;
  payload: Buffer;
}

/** Walks a well-formed Apple stream (its own parser, so tests do not lean on the decoder under test). */
function blocksOf(stream: Buffer): AppleBlock[] {
  const blocks: AppleBlock[] = [];
  let at = 0;
  for (;;) {
    const magic = stream.toString('latin1', at, at + 4);
    if (magic === 'bv4$') return blocks;
    if (magic === 'bv41') {
      const encoded = stream.readUInt32LE(at + 8);
      blocks.push({ kind: magic, decodedSize: stream.readUInt32LE(at + 4), payload: stream.subarray(at + 12, at + 12 + encoded) });
      at += 12 + encoded;
    } else if (magic === 'bv4-') {
      const size = stream.readUInt32LE(at + 4);
      blocks.push({ kind: magic, decodedSize: size, payload: stream.subarray(at + 8, at + 8 + size) });
      at += 8 + size;
    } else {
      throw new Error(`not an Apple LZ4 stream at byte ${at}`);
    }
  }
}

/** How many bv41 blocks cannot be decoded on their own, i.e. reach back into earlier blocks. */
function blocksNeedingEarlierOutput(stream: Buffer): number {
  let count = 0;
  for (const block of blocksOf(stream)) {
    if (block.kind !== 'bv41') continue;
    try {
      decodeLz4Block(block.payload, 0, block.payload.length, new Uint8Array(block.decodedSize), 0, block.decodedSize);
    } catch (error) {
      if (!(error instanceof Lz4BlockError)) throw error;
      count++;
    }
  }
  return count;
}

/** Feeds `stream` to a fresh decoder in the given pieces; returns the output (copied as it is handed over). */
function decodeInPieces(stream: Buffer, sizes: (index: number) => number): Buffer {
  const parts: Buffer[] = [];
  const decoder = new AppleLz4Decoder((decoded) => parts.push(Buffer.from(decoded)));
  let at = 0;
  for (let index = 0; at < stream.length; index++) {
    const size = Math.max(1, sizes(index));
    decoder.write(stream.subarray(at, at + size));
    at += size;
  }
  decoder.end();
  const out = Buffer.concat(parts);
  expect(decoder.decodedBytes).toBe(out.length);
  return out;
}

describe('encodeAppleLz4 → decodeAppleLz4 round trips', () => {
  it.each([
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.from('x')],
    ['one block less a byte', noise(APPLE_LZ4_BLOCK_SIZE - 1, 10)],
    ['one block exactly', text.subarray(0, APPLE_LZ4_BLOCK_SIZE)],
    ['just over a block', Buffer.alloc(APPLE_LZ4_BLOCK_SIZE + 1)],
    ['zeros, 6 MiB (past the decoder span)', Buffer.alloc(6 * 1024 * 1024)],
    ['random, multi-block', noise(300_000, 11)],
    ['text', text],
    ['mixed', mixed],
    ['linked', linked],
  ])('%s', (_name, data) => {
    const stream = encodeAppleLz4(data);
    expect(decodeAppleLz4(stream).equals(data)).toBe(true);
    const blocks = blocksOf(stream);
    expect(blocks.length).toBe(Math.ceil(data.length / APPLE_LZ4_BLOCK_SIZE));
    for (const block of blocks) expect(block.decodedSize).toBeLessThanOrEqual(APPLE_LZ4_BLOCK_SIZE);
    expect(stream.subarray(-4).equals(END)).toBe(true);
  });

  it('writes plain bv4- blocks for what LZ4 cannot shrink, bv41 for the rest', () => {
    const kinds = blocksOf(encodeAppleLz4(Buffer.concat([noise(APPLE_LZ4_BLOCK_SIZE, 12), Buffer.alloc(APPLE_LZ4_BLOCK_SIZE)]))).map((b) => b.kind);
    expect(kinds).toEqual(['bv4-', 'bv41']);
    expect(encodeAppleLz4(Buffer.alloc(512 * 1024)).length).toBeLessThan(3000);
  });

  it('uses the previous block as its dictionary, as Apple’s encoder does', () => {
    const stream = encodeAppleLz4(linked);
    expect(blocksNeedingEarlierOutput(stream)).toBeGreaterThan(0);
    expect(stream.length).toBeLessThan(linked.length - 35_000); // the repeats 60 KB and 20 KB back, not the one 80 KB back
  });
});

describe('AppleLz4Decoder streaming', () => {
  const stream = encodeAppleLz4(mixed);

  it('gives the same output fed one byte at a time', () => {
    expect(decodeInPieces(stream, () => 1).equals(mixed)).toBe(true);
  }, 20_000);

  it('gives the same output fed in random splits', () => {
    const random = noise(10_000, 21);
    for (let round = 0; round < 5; round++) {
      expect(decodeInPieces(stream, (i) => random[(i + round * 997) % random.length]! * (round + 1)).equals(mixed)).toBe(true);
    }
    // Splits that land inside every header: 5-byte pieces never align with 12- or 8-byte headers.
    expect(decodeInPieces(stream, () => 5).equals(mixed)).toBe(true);
  });

  it('hands over decoded output as it goes, not only at the end', () => {
    const sizes: number[] = [];
    const decoder = new AppleLz4Decoder((decoded) => sizes.push(decoded.length));
    const half = Math.floor(stream.length / 2);
    decoder.write(stream.subarray(0, half));
    expect(sizes.length).toBeGreaterThan(0);
    expect(decoder.decodedBytes).toBe(sizes.reduce((a, b) => a + b, 0));
    decoder.write(stream.subarray(half));
    decoder.end();
    expect(decoder.decodedBytes).toBe(mixed.length);
  });

  it('keeps the window right as its buffer slides: 9 MB of blocks that each reach into the one before', () => {
    const pattern = noise(20_000, 23);
    const data = Buffer.concat(Array.from({ length: 180 }, (_, i) => [pattern, noise(30_000, 100 + i)]).flat());
    const stream = encodeAppleLz4(data);
    expect(blocksNeedingEarlierOutput(stream)).toBeGreaterThan(100);
    expect(decodeInPieces(stream, () => 1 << 20).equals(data)).toBe(true);
    expect(decodeInPieces(stream, (i) => 1 + ((i * 104_729) % 200_000)).equals(data)).toBe(true);
  }, 30_000);

  it('decodes a plain block larger than its span, arriving in pieces', () => {
    const big = noise(5 * 1024 * 1024 + 3, 22);
    const hand = Buffer.concat([compressed(11, [0xb0, ...Buffer.from('hello world')]), raw(big), END]);
    const out = decodeInPieces(hand, () => 300_000);
    expect(out.equals(Buffer.concat([Buffer.from('hello world'), big]))).toBe(true);
  });

  it('decodes a bv41 block larger than its span, then goes on with blocks that reach back into it', () => {
    // Too big for the WebAssembly decoder's memory: decodeLz4Block takes it; the next blocks, which
    // copy from its last 64 KiB, go back to the WebAssembly decoder with that window.
    const big = Buffer.concat([mixed, mixed, mixed, mixed, mixed, mixed, mixed, mixed, mixed, mixed, mixed, mixed]);
    expect(big.length).toBeGreaterThan(4 * 1024 * 1024 + 65_536);
    const tail = big.subarray(big.length - 30_000);
    // Over 64 KiB, so it does not fit in what is left of the grown buffer: the window moves home for it.
    const following = Buffer.concat([tail, tail, tail.subarray(0, 10_000)]);
    const next = encodeLz4Block(Buffer.concat([big.subarray(big.length - 65_536), following]), 65_536, 65_536 + following.length, 0);
    const stream = Buffer.concat([compressed(big.length, encodeLz4Block(big)), compressed(following.length, next), encodeAppleLz4(text.subarray(0, 150_000)).subarray(0, -4), END]);
    const out = decodeInPieces(stream, () => 700_000);
    expect(out.equals(Buffer.concat([big, following, text.subarray(0, 150_000)]))).toBe(true);
  });
});

describe('AppleLz4Decoder on hand-built streams', () => {
  it('follows a bv41 match into the previous (plain) block', () => {
    // Block 2: one literal 'X', a 4-byte match 17 back (the first bytes of block 1), the closing literal-only token.
    const stream = Buffer.concat([raw(Buffer.from('HELLOWORLD123456')), compressed(5, [0x10, 0x58, 17, 0, 0x00]), END]);
    expect(decodeAppleLz4(stream).toString()).toBe('HELLOWORLD123456XHELL');
  });

  it('follows matches across compressed blocks with a plain block between them', () => {
    const first = Buffer.from('compressed block one, compressed block one!');
    const plain = Buffer.from('0123456789');
    // Third block: 4 bytes from 10 back (the plain block), then 8 bytes from the very start (block one).
    const back = first.length + plain.length + 4;
    const third = [0x00, 10, 0, 0x04, back & 255, back >> 8, 0x00];
    const stream = Buffer.concat([compressed(first.length, encodeLz4Block(first)), raw(plain), compressed(12, third), END]);
    expect(decodeAppleLz4(stream).toString()).toBe(`${first}${plain}0123compress`);
  });

  it('follows a match two blocks back while it is within 64 KiB', () => {
    const stream = Buffer.concat([raw(Buffer.from('ABCDEFGH')), raw(Buffer.from('ij')), compressed(4, [0x00, 10, 0, 0x00]), END]);
    expect(decodeAppleLz4(stream).toString()).toBe('ABCDEFGHijABCD');
  });

  it('takes an empty stream (only bv4$) as empty output', () => {
    expect(decodeAppleLz4(END).length).toBe(0);
  });
});

describe('AppleLz4Decoder refuses corrupt streams with MACVM_IMAGE_CORRUPT', () => {
  const good = encodeAppleLz4(text.subarray(0, 200_000));
  const firstBlockLength = 12 + good.readUInt32LE(8);

  const cases: [string, Buffer, string][] = [
    ['a bad magic at the start', Buffer.concat([Buffer.from('bv42'), good.subarray(4)]), 'at byte 0: unknown block magic 0x62763432'],
    ['a bad magic after the first block', Buffer.concat([good.subarray(0, firstBlockLength), Buffer.from('ZZZZ'), good.subarray(firstBlockLength + 4)]), `at byte ${firstBlockLength}: unknown block magic`],
    ['an LZ4 frame instead', Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x40, 0x40, 0xc0]), 'at byte 0: unknown block magic 0x04224d18'],
    ['an offset reaching before the stream', Buffer.concat([compressed(5, [0x10, 0x41, 9, 0, 0x00]), END]), 'at byte 14: the bv41 block that starts at byte 0 does not decode: match offset 9 reaches before the start'],
    ['a decoded size larger than the block', Buffer.concat([compressed(12, [0x50, 1, 2, 3, 4, 5]), END]), 'decodes to 5 bytes but its header says 12'],
    ['a decoded size smaller than the block', Buffer.concat([compressed(3, [0x50, 1, 2, 3, 4, 5]), END]), 'literals overflow'],
    ['an encoded size beyond any LZ4 block of that size', Buffer.concat([Buffer.from('bv41'), u32(10), u32(100), Buffer.alloc(100), END]), 'sizes are inconsistent'],
    ['a decoded size beyond what the payload can hold', Buffer.concat([Buffer.from('bv41'), u32(1_000_000), u32(10), Buffer.alloc(10), END]), 'sizes are inconsistent'],
    ['a block bigger than a Tart piece', Buffer.concat([Buffer.from('bv4-'), u32(0xffffffff)]), 'more than a 512 MiB Tart piece'],
    ['bytes after the end marker', Buffer.concat([good, Buffer.from('junk')]), `at byte ${good.length}: 4 more bytes follow the end marker`],
  ];
  it.each(cases)('%s', async (_name, stream, message) => {
    const error = await macvmErrorOf(() => decodeAppleLz4(stream));
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(error.message).toContain(message);
    expect(error.message).toMatch(/^LZ4 stream is corrupt at byte \d+: /);
    expect(error.hint).toMatch(/Pull the image again/);
  });

  it.each([
    ['in a header', good.subarray(0, 7), 'in the middle of a block'],
    ['in a compressed payload', good.subarray(0, 40), 'in the middle of a block'],
    ['in a plain block', Buffer.concat([Buffer.from('bv4-'), u32(10), Buffer.from('abc')]), 'in the middle of a block'],
    ['between blocks, with no end marker', good.subarray(0, firstBlockLength), 'before its end marker bv4$'],
    ['before anything', Buffer.alloc(0), 'before its end marker bv4$'],
  ])('a stream cut off %s fails at end()', async (_name, stream, message) => {
    const decoder = new AppleLz4Decoder(() => {});
    decoder.write(stream);
    const error = await macvmErrorOf(() => decoder.end());
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(error.message).toContain(`at byte ${stream.length}: stream stops ${message}`);
  });

  it('refuses junk written after the end marker in a later write, and stays failed', async () => {
    const decoder = new AppleLz4Decoder(() => {});
    decoder.write(good);
    const error = await macvmErrorOf(() => decoder.write(Buffer.from('x')));
    expect(error.message).toContain(`at byte ${good.length}: 1 more bytes follow the end marker`);
    expect(await macvmErrorOf(() => decoder.write(Buffer.alloc(0)))).toBe(error);
    expect(await macvmErrorOf(() => decoder.end())).toBe(error);
  });

  it('an unknown magic split across writes is reported at the block start', async () => {
    const decoder = new AppleLz4Decoder(() => {});
    decoder.write(good.subarray(0, firstBlockLength + 2));
    const error = await macvmErrorOf(() => decoder.write(Buffer.from('??')));
    expect(error.message).toContain(`at byte ${firstBlockLength}: unknown block magic 0x62763f3f`);
  });
});

describe('contract: an independent encoder and decoder (Debian’s lz4 CLI, linked 64 KiB blocks)', () => {
  it.each([
    ['linked', linked],
    ['mixed', mixed],
    ['zeros', Buffer.alloc(1024 * 1024)],
    ['random', noise(200_000, 31)],
    ['1 byte', Buffer.from('z')],
  ])('AppleLz4Decoder reproduces %s from the CLI’s blocks re-wrapped as bv41/bv4-', async (_name, data) => {
    const stream = await appleLz4FromLz4Cli(data);
    expect(decodeAppleLz4(stream).equals(data)).toBe(true);
    expect(decodeInPieces(stream, (i) => 1 + ((i * 7919) % 70_000)).equals(data)).toBe(true);
  }, 30_000);

  it('the CLI’s blocks do reach back into earlier blocks (so the test above exercises the window)', async () => {
    expect(blocksNeedingEarlierOutput(await appleLz4FromLz4Cli(linked))).toBeGreaterThan(0);
  }, 30_000);

  it.each([
    ['linked', linked],
    ['mixed', mixed],
    ['text', text],
    ['zeros', Buffer.alloc(3 * APPLE_LZ4_BLOCK_SIZE + 17)],
    ['random', noise(150_000, 32)],
  ])('the CLI decodes what encodeAppleLz4 writes for %s (our blocks are valid linked LZ4)', async (_name, data) => {
    expect((await lz4CliDecodeAppleLz4(encodeAppleLz4(data))).equals(data)).toBe(true);
  }, 30_000);
});
