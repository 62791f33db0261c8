/**
 * The CPU-heavy part of getting a disk piece onto disk, all of it: keep the compressed bytes in
 * the piece's .partial file (so a killed pull can resume), hash them, decode the Apple LZ4 stream
 * (or take raw bytes, for a piece copied from another cached image), hash what comes out, write
 * it sparsely at the piece's offset, and check sizes and digests at the end. Synchronous, so the
 * same code runs in a decode worker thread or, for small pulls, on the main thread; the main
 * thread then only moves bytes from the network.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readSync, writevSync } from 'node:fs';
import { MacvmError, messageOf } from '../errors.js';
import { AppleLz4Decoder } from './apple-lz4.js';
import { SparseWriter } from './sparse-writer.js';

export interface PieceJobSpec {
  /** An open descriptor of the disk file (process-wide, so a worker thread can use it). */
  fd: number;
  offset: number;
  size: number;
  contentDigest: string;
  /** The region may hold an earlier attempt's bytes (see SparseWriter). */
  careful: boolean;
  /** A downloaded piece: Apple LZ4 in, kept in `partialPath`, checked against the layer's digest and size. Absent for raw bytes copied from a cached image. */
  blob?: { digest: string; size: number; partialPath: string };
}

/** The piece's bytes are not what its descriptor and annotations say: `why`, for a message that names the layer. */
export class PieceCheckError extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

const PARTIAL_BATCH = 1024 * 1024;
/** At most this many chunks per writev (the system's IOV_MAX is 1024); tiny chunks are joined first. */
const PARTIAL_CHUNKS = 64;

export class PieceJob {
  private compressed: Hash | undefined;
  private content!: Hash;
  private writer!: SparseWriter;
  private decoder: AppleLz4Decoder | undefined;
  private decoded = 0;
  private received = 0;
  private readonly partial: number | undefined;
  private batch: Buffer[] = [];
  private batched = 0;
  private reported = 0;

  constructor(private readonly spec: PieceJobSpec) {
    this.partial = spec.blob ? openSync(spec.blob.partialPath, 'a+', 0o600) : undefined;
    this.reset(spec.careful);
  }

  /**
   * Decodes what an earlier process left in the .partial file and returns how many bytes of the
   * blob that is: the download continues from there. A .partial longer than the blob is dropped.
   */
  resume(): number {
    if (this.partial === undefined) return 0;
    const chunk = Buffer.allocUnsafe(PARTIAL_BATCH);
    for (let position = 0; ; ) {
      const read = readSync(this.partial, chunk, 0, chunk.length, position);
      if (read === 0) break;
      position += read;
      if (position > this.spec.blob!.size) {
        this.restart();
        return 0;
      }
      this.take(chunk.subarray(0, read), false);
    }
    return this.received;
  }

  /** The next bytes of the blob (or of the raw piece). Throws PieceCheckError for bytes that cannot be right. */
  write(chunk: Uint8Array): void {
    this.take(chunk, true);
  }

  /** Bytes written to the disk since the last call (for write-behind: see WriteThrough). */
  takeWritten(): number {
    const written = this.writer.nonZeroBytes - this.reported;
    this.reported = this.writer.nonZeroBytes;
    return written;
  }

  /** The server sent the blob from its start after all: forget everything, and distrust the region. */
  restart(): void {
    this.batch = [];
    this.batched = 0;
    if (this.partial !== undefined) ftruncateSync(this.partial, 0);
    this.reset(true);
  }

  /** Ends the stream and checks every size and digest (PieceCheckError if one differs). */
  finish(): void {
    this.flushPartial();
    const blob = this.spec.blob;
    if (blob) {
      if (this.received !== blob.size) throw new PieceCheckError(`it is ${this.received} bytes where its descriptor says ${blob.size}`);
      const digest = `sha256:${this.compressed!.digest('hex')}`;
      if (digest !== blob.digest) throw new PieceCheckError(`its ${blob.size} compressed bytes hash to ${digest}`);
      try {
        this.decoder!.end();
      } catch (error) {
        throw asCheck(error);
      }
    }
    if (this.decoded !== this.spec.size) throw new PieceCheckError(`it decodes to ${this.decoded} bytes where its annotation says ${this.spec.size}`);
    const digest = `sha256:${this.content.digest('hex')}`;
    if (digest !== this.spec.contentDigest) throw new PieceCheckError(`its decoded bytes hash to ${digest} where its annotation says ${this.spec.contentDigest}`);
  }

  /** Writes out what the .partial file is owed and closes it; safe to call twice. */
  close(): void {
    if (this.partial === undefined) return;
    try {
      this.flushPartial();
    } finally {
      try {
        closeSync(this.partial);
      } catch {
        // closed already
      }
    }
  }

  private reset(careful: boolean): void {
    this.compressed = this.spec.blob ? createHash('sha256') : undefined;
    this.content = createHash('sha256');
    this.writer = new SparseWriter(this.spec.fd, this.spec.offset, { careful });
    this.reported = 0;
    this.decoder = this.spec.blob ? new AppleLz4Decoder((out) => this.output(out)) : undefined;
    this.decoded = 0;
    this.received = 0;
  }

  private take(chunk: Uint8Array, keep: boolean): void {
    if (!this.decoder) return this.output(chunk);
    this.received += chunk.length;
    if (this.received > this.spec.blob!.size) throw new PieceCheckError(`it is longer than the ${this.spec.blob!.size} bytes its descriptor says`);
    this.compressed!.update(chunk);
    if (keep) this.keep(chunk);
    try {
      this.decoder.write(chunk);
    } catch (error) {
      throw asCheck(error);
    }
  }

  private output(out: Uint8Array): void {
    this.decoded += out.length;
    // Checked before writing: a piece must never spill into the next one's region.
    if (this.decoded > this.spec.size) throw new PieceCheckError(`it decodes to more than the ${this.spec.size} bytes its annotation says`);
    this.content.update(out);
    this.writer.push(out);
  }

  private keep(chunk: Uint8Array): void {
    this.batch.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.batched += chunk.length;
    if (this.batched >= PARTIAL_BATCH || this.batch.length >= PARTIAL_CHUNKS) this.flushPartial();
  }

  /**
   * One writev of the gathered chunks: joining them into one buffer first cost a copy of every
   * compressed byte (0.15-0.27 s of CPU per decode worker in a profile of a 391 MiB pull).
   */
  private flushPartial(): void {
    if (this.partial === undefined || this.batched === 0) return;
    const parts = this.batch.length >= PARTIAL_CHUNKS && this.batched < PARTIAL_BATCH ? [Buffer.concat(this.batch, this.batched)] : this.batch;
    this.batch = [];
    this.batched = 0;
    while (parts.length > 0) {
      // A short write (rare on a file) goes on from where it stopped.
      let written = writevSync(this.partial, parts);
      while (written > 0) {
        const first = parts[0]!;
        if (written < first.length) {
          parts[0] = first.subarray(written);
          break;
        }
        written -= first.length;
        parts.shift();
      }
    }
  }
}

function asCheck(error: unknown): PieceCheckError {
  return error instanceof PieceCheckError ? error : new PieceCheckError(`it does not decode as Apple LZ4: ${messageOf(error)}`);
}

/** The error a pull reports for a layer whose bytes are wrong; nothing gets installed after it. */
export function corruptLayer(describe: string, why: string, cause?: unknown): MacvmError {
  return new MacvmError('MACVM_IMAGE_CORRUPT', `${describe} is corrupt: ${why}. Nothing was installed.`, {
    hint: 'Pull again; if it fails the same way, the image in the registry is damaged and needs a re-push.',
    cause,
  });
}
