/**
 * The CPU-heavy part of pushing a disk piece: read it, hash it, compress it as Apple LZ4 and hash
 * the result. Runs in worker threads for a disk of real size (one 512 MiB piece is seconds of
 * compression on one core), on the calling thread for a small one.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { MacvmError } from '../errors.js';
import { encodeAppleLz4 } from './apple-lz4.js';
import { isAllZero } from './disk-pieces.js';
import { startOciWorker } from './worker-thread.js';

export interface EncodedPiece {
  /** sha256 of the piece as it is on disk (the uncompressed-content-digest annotation). */
  contentDigest: string;
  /** sha256 of the compressed blob. */
  digest: string;
  compressed: Uint8Array;
}

/** Below this much disk, starting worker threads costs more than it saves. */
const THREADED_BYTES = 256 * 1024 * 1024;

/**
 * Reads `size` bytes at `offset` of the open disk `fd` and encodes them. An all-zero piece of a
 * size already encoded reuses that blob (`zeroBlobs`), since compressing 512 MiB of zeros costs
 * as much as any other 512 MiB and every such piece gives the same bytes.
 */
export function encodePiece(fd: number, offset: number, size: number, zeroBlobs: Map<number, EncodedPiece>): EncodedPiece {
  const data = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; ) {
    const read = readSync(fd, data, at, size - at, offset + at);
    if (read === 0) {
      throw new MacvmError('MACVM_IMAGE_CORRUPT', `The disk ended at byte ${offset + at} while reading a piece that should reach ${offset + size}; was it changed during the push?`);
    }
    at += read;
  }
  const zero = isAllZero(data);
  const cached = zero ? zeroBlobs.get(size) : undefined;
  // Copies (new Uint8Array, not Buffer#slice, which shares memory): a worker hands its result over by transfer.
  if (cached) return { ...cached, compressed: new Uint8Array(cached.compressed) };
  const contentDigest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const compressed = encodeAppleLz4(data);
  const encoded: EncodedPiece = { contentDigest, digest: `sha256:${createHash('sha256').update(compressed).digest('hex')}`, compressed };
  if (zero) zeroBlobs.set(size, { ...encoded, compressed: new Uint8Array(compressed) });
  return encoded;
}

export type EncodeRequest = { id: number; fd: number; offset: number; size: number };
export type EncodeReply = { id: number; piece: EncodedPiece } | { id: number; message: string; code?: string };

/** Encodes pieces on `threads` workers (0: on the calling thread), one request at a time per worker. */
export class EncodePool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly waiting: Array<(worker: Worker) => void> = [];
  private readonly zeroBlobs = new Map<number, EncodedPiece>();
  private nextId = 1;

  constructor(threads: number) {
    for (let i = 0; i < threads; i += 1) {
      const worker = startOciWorker('piece-encode-worker');
      this.all.push(worker);
      this.idle.push(worker);
    }
  }

  /** Workers for a disk of `diskSize` bytes pushed `concurrency` pieces at a time. */
  static threadsFor(diskSize: number, concurrency: number): number {
    return diskSize >= THREADED_BYTES ? Math.max(1, Math.min(availableParallelism(), concurrency)) : 0;
  }

  async encode(fd: number, offset: number, size: number): Promise<EncodedPiece> {
    if (this.all.length === 0) return encodePiece(fd, offset, size, this.zeroBlobs);
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    try {
      return await new Promise<EncodedPiece>((resolve, reject) => {
        const id = this.nextId++;
        const onMessage = (reply: EncodeReply) => {
          if (reply.id !== id) return;
          cleanup();
          if ('piece' in reply) resolve(reply.piece);
          else reject(Object.assign(new Error(reply.message), reply.code ? { code: reply.code } : {}));
        };
        const onError = (error: Error) => {
          cleanup();
          reject(error);
        };
        const cleanup = () => {
          worker.off('message', onMessage);
          worker.off('error', onError);
        };
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.postMessage({ id, fd, offset, size } satisfies EncodeRequest);
      });
    } finally {
      const next = this.waiting.shift();
      if (next) next(worker);
      else this.idle.push(worker);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((worker) => worker.terminate()));
  }
}
