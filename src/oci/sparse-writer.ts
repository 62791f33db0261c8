/**
 * Writes a decoded disk piece at its offset, leaving zero runs as holes: the file was sized with
 * truncate, so a region never written reads as zeros and takes no blocks. Tart does the same at
 * 4 MiB granularity; this writer checks 64 KiB blocks inside each 4 MiB chunk, so a chunk with a
 * little data allocates little more than that data.
 *
 * `careful` is for a region that may hold bytes from an earlier attempt (a resumed pull, a retry
 * after the server ignored Range): skipping a zero block there could keep stale data that no
 * digest would notice, since the digests cover the decoded stream, not the file. So a careful
 * writer reads each zero block back and overwrites it with zeros if it is not zero already.
 */
import type { FileHandle } from 'node:fs/promises';
import { ZERO_CHUNK_SIZE, isAllZero } from './disk-pieces.js';

export const HOLE_GRANULARITY = 64 * 1024;

const ZERO_BLOCK = Buffer.alloc(HOLE_GRANULARITY);
/** Writes in flight before drain() makes the producer wait. */
const MAX_PENDING = 4;

export class SparseWriter {
  private chunk: Buffer;
  private fill = 0;
  /** File offset of the current chunk's first byte. */
  private position: number;
  private readonly spare: Buffer[] = [];
  private readonly pending = new Set<Promise<void>>();
  private failure: unknown;
  /** Bytes that were not zero and so were written. */
  nonZeroBytes = 0;

  constructor(
    private readonly disk: FileHandle,
    offset: number,
    private readonly options: { careful: boolean },
  ) {
    this.position = offset;
    this.chunk = Buffer.allocUnsafe(ZERO_CHUNK_SIZE);
  }

  /** Takes decoded bytes (copied, so the caller may reuse its buffer at once). */
  push(data: Uint8Array): void {
    let at = 0;
    while (at < data.length) {
      const take = Math.min(ZERO_CHUNK_SIZE - this.fill, data.length - at);
      this.chunk.set(data.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      if (this.fill === ZERO_CHUNK_SIZE) this.emit();
    }
  }

  /** Waits until few enough writes are in flight; rethrows a write's failure. */
  async drain(limit = MAX_PENDING): Promise<void> {
    while (this.pending.size > limit) await Promise.race(this.pending);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Writes what is left and waits for every write. */
  async end(): Promise<void> {
    if (this.fill > 0) this.emit();
    await this.drain(0);
  }

  private emit(): void {
    const chunk = this.chunk;
    const length = this.fill;
    const position = this.position;
    this.position += length;
    this.fill = 0;
    this.chunk = this.spare.pop() ?? Buffer.allocUnsafe(ZERO_CHUNK_SIZE);
    const done = this.writeChunk(chunk.subarray(0, length), position)
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.spare.push(chunk);
        this.pending.delete(done);
      });
    this.pending.add(done);
  }

  private async writeChunk(chunk: Buffer, position: number): Promise<void> {
    if (!this.options.careful && isAllZero(chunk)) return;
    const old = this.options.careful ? await this.readBack(chunk.length, position) : undefined;
    // Runs of non-zero 64 KiB blocks become one write each.
    let runStart = -1;
    for (let at = 0; at <= chunk.length; at += HOLE_GRANULARITY) {
      const end = Math.min(at + HOLE_GRANULARITY, chunk.length);
      const zero = at === chunk.length || isAllZero(chunk.subarray(at, end));
      if (!zero && runStart < 0) runStart = at;
      if (zero && runStart >= 0) {
        await this.writeFully(chunk.subarray(runStart, at), position + runStart);
        this.nonZeroBytes += at - runStart;
        runStart = -1;
      }
      if (zero && old && at < chunk.length && !isAllZero(old.subarray(at, end))) {
        await this.writeFully(ZERO_BLOCK.subarray(0, end - at), position + at);
      }
    }
  }

  /** What the file holds there now (zeros past its end). */
  private async readBack(length: number, position: number): Promise<Buffer> {
    const old = Buffer.alloc(length);
    for (let at = 0; at < length; ) {
      const { bytesRead } = await this.disk.read(old, at, length - at, position + at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return old;
  }

  private async writeFully(data: Buffer, position: number): Promise<void> {
    for (let at = 0; at < data.length; ) {
      const { bytesWritten } = await this.disk.write(data, at, data.length - at, position + at);
      at += bytesWritten;
    }
  }
}
