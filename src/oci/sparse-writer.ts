/**
 * Writes a decoded disk piece at its offset, leaving zero runs as holes: the file was sized with
 * truncate, so a region never written reads as zeros and takes no blocks. Tart does the same at
 * 4 MiB granularity; this writer checks 64 KiB blocks, so a region with a little data allocates
 * little more than that data.
 *
 * `careful` is for a region that may hold bytes from an earlier attempt (a resumed pull, a retry
 * after the server ignored Range): skipping a zero block there could keep stale data that no
 * digest would notice, since the digests cover the decoded stream, not the file. So a careful
 * writer reads each zero block back and overwrites it with zeros if it is not zero already.
 *
 * The writes are synchronous (pwrite on a file descriptor): the writer runs inside a decode
 * worker thread, whose whole job is this, or on the main thread for small pulls.
 */
import { readSync, writeSync } from 'node:fs';
import { isAllZero } from './disk-pieces.js';

export const HOLE_GRANULARITY = 64 * 1024;

const ZERO_BLOCK = Buffer.alloc(HOLE_GRANULARITY);

export class SparseWriter {
  /** File offset of the next byte pushed. */
  private position: number;
  /** Bytes that were not zero and so were written. */
  nonZeroBytes = 0;

  constructor(
    private readonly fd: number,
    offset: number,
    private readonly options: { careful: boolean },
  ) {
    this.position = offset;
  }

  /**
   * Takes the next decoded bytes and writes their non-zero parts before returning, straight from
   * `data` (no copy), so a decoder may reuse its buffer at once. Zero detection works on 64 KiB
   * blocks aligned to the file, cut where `data` begins and ends: a block split over two calls is
   * judged in two parts, which can only make the holes finer.
   */
  push(data: Uint8Array): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const start = this.position;
    this.position += bytes.length;
    let runStart = -1;
    for (let at = 0; at <= bytes.length; ) {
      const end = at === bytes.length ? at : Math.min(bytes.length, at + HOLE_GRANULARITY - ((start + at) % HOLE_GRANULARITY));
      const zero = at === bytes.length || isAllZero(bytes.subarray(at, end));
      if (!zero && runStart < 0) runStart = at;
      if (zero && runStart >= 0) {
        // Runs of non-zero blocks become one write each.
        this.writeFully(bytes.subarray(runStart, at), start + runStart);
        this.nonZeroBytes += at - runStart;
        runStart = -1;
      }
      if (zero && at < bytes.length && this.options.careful) this.clearIfStale(end - at, start + at);
      if (at === bytes.length) break;
      at = end;
    }
  }

  /** Nothing is held back; kept so callers say where a piece ends. */
  end(): void {}

  /** A block that should be zero but holds an earlier attempt's bytes is zeroed. */
  private clearIfStale(length: number, position: number): void {
    const old = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(this.fd, old, read, length - read, position + read);
      if (n === 0) break;
      read += n;
    }
    if (!isAllZero(old.subarray(0, read))) this.writeFully(ZERO_BLOCK.subarray(0, length), position);
  }

  private writeFully(data: Buffer, position: number): void {
    for (let at = 0; at < data.length; ) at += writeSync(this.fd, data, at, data.length - at, position + at);
  }
}
