/**
 * The decoded side of getting a disk piece onto disk: decode the Apple LZ4 stream (or take raw
 * bytes, for a piece copied from another cached image), hash what comes out, write it sparsely
 * at the piece's offset, and check the decoded size and digest at the end. The compressed side
 * (size, digest, .partial file) is BlobKeeper's, on the thread the bytes arrive on. Synchronous,
 * so the same code runs in a decode worker thread or, for small pulls, on the main thread.
 */
import { createHash, type Hash } from 'node:crypto';
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
  /** The bytes are an Apple LZ4 stream (a downloaded layer), not the raw piece (a copy from a cached image). */
  lz4: boolean;
}

/** The piece's bytes are not what its descriptor and annotations say: `why`, for a message that names the layer. */
export class PieceCheckError extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

export class PieceJob {
  private content!: Hash;
  private writer!: SparseWriter;
  private decoder: AppleLz4Decoder | undefined;
  private decoded = 0;
  private reported = 0;

  constructor(private readonly spec: PieceJobSpec) {
    this.reset(spec.careful);
  }

  /** The next bytes of the blob (or of the raw piece). Throws PieceCheckError for bytes that cannot be right. */
  write(chunk: Uint8Array): void {
    if (!this.decoder) return this.output(chunk);
    try {
      this.decoder.write(chunk);
    } catch (error) {
      throw asCheck(error);
    }
  }

  /** Bytes written to the disk since the last call (for write-behind: see WriteThrough). */
  takeWritten(): number {
    const written = this.writer.nonZeroBytes - this.reported;
    this.reported = this.writer.nonZeroBytes;
    return written;
  }

  /** The server sent the blob from its start after all: forget everything, and distrust the region. */
  restart(): void {
    this.reset(true);
  }

  /** Ends the stream and checks the decoded size and digest (PieceCheckError if one differs). */
  finish(): void {
    if (this.decoder) {
      try {
        this.decoder.end();
      } catch (error) {
        throw asCheck(error);
      }
    }
    if (this.decoded !== this.spec.size) throw new PieceCheckError(`it decodes to ${this.decoded} bytes where its annotation says ${this.spec.size}`);
    const digest = `sha256:${this.content.digest('hex')}`;
    if (digest !== this.spec.contentDigest) throw new PieceCheckError(`its decoded bytes hash to ${digest} where its annotation says ${this.spec.contentDigest}`);
  }

  private reset(careful: boolean): void {
    this.content = createHash('sha256');
    this.writer = new SparseWriter(this.spec.fd, this.spec.offset, { careful });
    this.reported = 0;
    this.decoder = this.spec.lz4 ? new AppleLz4Decoder((out) => this.output(out)) : undefined;
    this.decoded = 0;
  }

  private output(out: Uint8Array): void {
    this.decoded += out.length;
    // Checked before writing: a piece must never spill into the next one's region.
    if (this.decoded > this.spec.size) throw new PieceCheckError(`it decodes to more than the ${this.spec.size} bytes its annotation says`);
    this.content.update(out);
    this.writer.push(out);
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
