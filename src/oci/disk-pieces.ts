/**
 * A disk as Tart's disk.v2 cuts it: fixed 512 MiB pieces (the last one shorter), each
 * compressed on its own, each annotated with its decoded size and sha256.
 */
import { createHash } from 'node:crypto';
import { MacvmError } from '../errors.js';

/** DiskV2.layerLimitBytes. */
export const PIECE_SIZE = 512 * 1024 * 1024;

/** The block Tart (and this engine) compares against zero to decide what to skip. */
export const ZERO_CHUNK_SIZE = 4 * 1024 * 1024;
const ZERO_CHUNK = Buffer.alloc(ZERO_CHUNK_SIZE);

export interface PieceRange {
  offset: number;
  size: number;
}

/**
 * The pieces of a disk of `diskSize` bytes. `pieceSize` other than PIECE_SIZE is for tests
 * only: Tart reads any sizes back, but always writes 512 MiB.
 */
export function pieceRanges(diskSize: number, pieceSize = PIECE_SIZE): PieceRange[] {
  if (!Number.isSafeInteger(pieceSize) || pieceSize <= 0) throw new MacvmError('MACVM_BAD_ARGUMENT', `The disk piece size must be a positive number of bytes, got ${pieceSize}.`);
  const ranges: PieceRange[] = [];
  for (let offset = 0; offset < diskSize; offset += pieceSize) ranges.push({ offset, size: Math.min(pieceSize, diskSize - offset) });
  return ranges;
}

/** sha256 of 512 MiB of zeros: every all-zero piece but a disk's last has it (checked by a test). */
export const ZERO_PIECE_DIGEST = 'sha256:9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767';

const zeroDigests = new Map<number, Promise<string>>([[PIECE_SIZE, Promise.resolve(ZERO_PIECE_DIGEST)]]);

/**
 * sha256 of `size` zero bytes: a piece with this uncompressed-content-digest is all zeros, so a
 * pull leaves it a hole without downloading it. Hashing 512 MiB takes a fraction of a second;
 * each size is hashed once per process.
 */
export function zeroDigest(size: number): Promise<string> {
  let digest = zeroDigests.get(size);
  if (!digest) {
    digest = (async () => {
      const hash = createHash('sha256');
      let chunks = 0;
      for (let left = size; left > 0; left -= ZERO_CHUNK_SIZE) {
        hash.update(left >= ZERO_CHUNK_SIZE ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, left));
        // Let the event loop breathe every 64 MiB: this runs beside downloads.
        if (++chunks % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      return `sha256:${hash.digest('hex')}`;
    })();
    zeroDigests.set(size, digest);
  }
  return digest;
}

/**
 * Whether a disk piece is all zeros, by its annotated digest, without hashing: any LZ4 encoder
 * shrinks zeros well over a hundredfold, so a blob bigger than 1/32 of the piece cannot be
 * zeros, and its size is not worth hashing a run of zeros for.
 */
export async function isZeroPiece(piece: { size: number; contentDigest: string; layer: { size: number } }): Promise<boolean> {
  if (piece.layer.size * 32 > piece.size) return false;
  return piece.contentDigest === (await zeroDigest(piece.size));
}

/** Whether `data` (any length) holds only zero bytes; memcmp against a zero chunk, not a byte loop. */
export function isAllZero(data: Uint8Array): boolean {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let at = 0; at < bytes.length; at += ZERO_CHUNK_SIZE) {
    const end = Math.min(at + ZERO_CHUNK_SIZE, bytes.length);
    if (bytes.compare(ZERO_CHUNK, 0, end - at, at, end) !== 0) return false;
  }
  return true;
}
