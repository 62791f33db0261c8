import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAppleLz4 } from '../../src/oci/apple-lz4.js';
import { ZERO_PIECE_DIGEST, isAllZero, isZeroPiece, pieceRanges, zeroDigest } from '../../src/oci/disk-pieces.js';
import { EncodePool, encodePiece } from '../../src/oci/piece-encode.js';
import { SparseWriter } from '../../src/oci/sparse-writer.js';
import { macvmErrorOf } from '../support/macvm-error.js';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-oci-pieces-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cutting a disk into pieces', () => {
  it('cuts fixed pieces with a short last one', () => {
    expect(pieceRanges(1300, 512)).toEqual([
      { offset: 0, size: 512 },
      { offset: 512, size: 512 },
      { offset: 1024, size: 276 },
    ]);
    expect(pieceRanges(1024, 512)).toHaveLength(2);
    expect(pieceRanges(0, 512)).toEqual([]);
    expect(pieceRanges(3 * 512 * MiB)).toHaveLength(3);
  });

  it('knows the digest of 512 MiB of zeros without hashing them, and that it is right', { timeout: 20_000 }, async () => {
    const hash = createHash('sha256');
    const zeros = Buffer.alloc(4 * MiB);
    for (let i = 0; i < 128; i++) hash.update(zeros);
    expect(ZERO_PIECE_DIGEST).toBe(`sha256:${hash.digest('hex')}`);
    expect(await zeroDigest(512 * MiB)).toBe(ZERO_PIECE_DIGEST);
    // A blob too big to be compressed zeros is not taken for one, whatever it claims.
    expect(await isZeroPiece({ size: 512 * MiB, contentDigest: ZERO_PIECE_DIGEST, layer: { size: 2 * MiB } })).toBe(true);
    expect(await isZeroPiece({ size: 512 * MiB, contentDigest: ZERO_PIECE_DIGEST, layer: { size: 100 * MiB } })).toBe(false);
  });

  it('knows the digest of a run of zeros, and whether bytes are all zero', async () => {
    const size = 9 * MiB + 7;
    expect(await zeroDigest(size)).toBe(`sha256:${createHash('sha256').update(Buffer.alloc(size)).digest('hex')}`);
    expect(isAllZero(Buffer.alloc(5 * MiB + 3))).toBe(true);
    const one = Buffer.alloc(5 * MiB + 3);
    one[5 * MiB + 2] = 1;
    expect(isAllZero(one)).toBe(false);
  });

  it('encodes a piece as Apple LZ4 with its digests, and compresses each size of zeros once', async () => {
    const path = join(dir, 'disk.raw');
    const data = Buffer.concat([Buffer.alloc(2 * MiB), randomBytes(100), Buffer.alloc(3 * MiB)]);
    await writeFile(path, data);
    const disk = await open(path, 'r');
    try {
      const zeroBlobs = new Map();
      const first = encodePiece(disk.fd, 0, 2 * MiB, zeroBlobs);
      expect(first.contentDigest).toBe(await zeroDigest(2 * MiB));
      expect(decodeAppleLz4(first.compressed).equals(Buffer.alloc(2 * MiB))).toBe(true);
      expect(first.digest).toBe(`sha256:${createHash('sha256').update(first.compressed).digest('hex')}`);
      expect(zeroBlobs.size).toBe(1);
      const again = encodePiece(disk.fd, 2 * MiB + 100 + MiB, 2 * MiB, zeroBlobs);
      expect([again.contentDigest, again.digest]).toEqual([first.contentDigest, first.digest]);
      expect(Buffer.from(again.compressed).equals(first.compressed)).toBe(true);
      const second = encodePiece(disk.fd, 2 * MiB, data.length - 2 * MiB, zeroBlobs);
      expect(decodeAppleLz4(second.compressed).equals(data.subarray(2 * MiB))).toBe(true);
      expect(second.contentDigest).toBe(`sha256:${createHash('sha256').update(data.subarray(2 * MiB)).digest('hex')}`);
      const error = await macvmErrorOf(() => encodePiece(disk.fd, 4 * MiB, 2 * MiB, zeroBlobs));
      expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    } finally {
      await disk.close();
    }
  });

  it('encodes in worker threads the same as on the calling thread', { timeout: 30_000 }, async () => {
    const path = join(dir, 'threads.raw');
    const data = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB)]);
    await writeFile(path, data);
    const disk = await open(path, 'r');
    const pool = new EncodePool(2);
    try {
      const [a, b] = await Promise.all([pool.encode(disk.fd, 0, 3 * MiB), pool.encode(disk.fd, 3 * MiB, 2 * MiB)]);
      const here = encodePiece(disk.fd, 0, 3 * MiB, new Map());
      expect([a.contentDigest, a.digest]).toEqual([here.contentDigest, here.digest]);
      expect(Buffer.from(a.compressed).equals(here.compressed)).toBe(true);
      expect(decodeAppleLz4(b.compressed).equals(Buffer.alloc(2 * MiB))).toBe(true);
    } finally {
      await pool.close();
      await disk.close();
    }
  });
});

describe('SparseWriter', () => {
  it('writes the bytes at their offset and leaves zero runs as holes', { timeout: 20_000 }, async () => {
    const path = join(dir, 'sparse.img');
    const size = 64 * MiB;
    const offset = 16 * MiB;
    // 40 MiB of decoded stream: a little data at scattered spots, zeros elsewhere.
    const stream = Buffer.alloc(40 * MiB);
    const spots = [0, 5 * MiB + 70_000, 17 * MiB, 39 * MiB + 1000];
    for (const at of spots) randomBytes(3000).copy(stream, at);
    const disk = await open(path, 'w+');
    try {
      await disk.truncate(size);
      const writer = new SparseWriter(disk.fd, offset, { careful: false });
      // Fed in odd-sized bits, as a decoder hands them out, and a whole chunk and more at once.
      writer.push(stream.subarray(0, 5 * MiB + 17));
      for (let at = 5 * MiB + 17; at < stream.length; at += 1_000_003) writer.push(stream.subarray(at, Math.min(at + 1_000_003, stream.length)));
      writer.end();
    } finally {
      await disk.close();
    }
    const written = await readFile(path);
    expect(written.length).toBe(size);
    expect(written.subarray(offset, offset + stream.length).equals(stream)).toBe(true);
    expect(isAllZero(written.subarray(0, offset))).toBe(true);
    // Each 3000-byte spot touches at most two 64 KiB blocks: far under a MiB allocated, not 40.
    const allocated = (await stat(path)).blocks * 512;
    expect(allocated).toBeLessThanOrEqual(spots.length * 2 * 64 * 1024);
    expect(allocated).toBeGreaterThan(0);
  });

  it('in careful mode clears stale bytes where the stream has zeros, and only there', { timeout: 20_000 }, async () => {
    const path = join(dir, 'stale.img');
    const stale = randomBytes(8 * MiB);
    await writeFile(path, stale);
    const stream = Buffer.alloc(8 * MiB);
    randomBytes(1000).copy(stream, 3 * MiB);
    for (const careful of [false, true]) {
      await writeFile(path, stale);
      const disk = await open(path, 'r+');
      try {
        const writer = new SparseWriter(disk.fd, 0, { careful });
        writer.push(stream);
        writer.end();
      } finally {
        await disk.close();
      }
      // Without care the stale bytes survive (which is why a resumed region needs it).
      expect((await readFile(path)).equals(stream)).toBe(careful);
    }
  });
});
