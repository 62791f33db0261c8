/**
 * Where disk pieces are decoded: in worker threads for a pull of real size, so keeping,
 * decoding and hashing (about a second per GiB on one core) run on every core while the main
 * thread keeps the network busy; on the main thread for a small pull, where starting workers
 * would cost more than it saves.
 *
 * A sink takes one piece's bytes in order. For a downloaded piece its BlobKeeper, on this
 * thread, keeps the compressed side (size, digest, .partial file) and start() replays what an
 * earlier pull left there; the worker decodes. finish() resolves when every size and digest
 * checked out, and a wrong piece rejects with MACVM_IMAGE_CORRUPT naming the layer. write()
 * applies back-pressure: it waits while too many bytes are on their way to the worker.
 */
import type { Worker } from 'node:worker_threads';
import { BlobKeeper, type KeptBlob } from './blob-keeper.js';
import type { FromWorker, ToWorker } from './piece-decode-worker.js';
import { PieceCheckError, PieceJob, type PieceJobSpec, corruptLayer } from './piece-job.js';
import { startOciWorker } from './worker-thread.js';

export interface PieceSink {
  /** Replays the piece's .partial file; resolves with how many bytes of the blob that was. */
  start(): Promise<number>;
  /**
   * The next bytes. `given`: the caller will not touch `chunk` again, so a chunk that is its
   * whole ArrayBuffer (as node:http's body chunks are) may be moved to the worker, not copied.
   */
  write(chunk: Uint8Array, given?: boolean): Promise<void>;
  /** The server sent the blob from its first byte: drop what was had, distrust the region. */
  restart(): Promise<void>;
  /** Resolves when the piece is written and every size and digest checked. */
  finish(): Promise<void>;
  /** Stops the job (after a failure) and resolves once it writes nothing more; what it wrote stays. */
  abort(): Promise<void>;
}

/**
 * Bytes (or chunks) gathered into one message to a worker, and bytes in flight before write()
 * waits (per piece: 128 MiB at most for four pieces at once). Each message and its ack cost both
 * threads a deserialisation: at 512 KiB per message the oci bench pull sent ~800 of them, and
 * going to 4 MiB took its time from 1.02-1.03x skopeo's to 1.00-1.01x.
 */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_CHUNKS = 128;
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;

export class DecodePool {
  private readonly slots: WorkerSlot[];
  private nextId = 1;

  /** `threads` 0 decodes on the calling thread. Workers start at once, so they load while the pull gets going. */
  constructor(threads: number) {
    this.slots = Array.from({ length: threads }, () => new WorkerSlot(startOciWorker('piece-decode-worker')));
  }

  /**
   * A sink for one piece. `blob`: a downloaded layer (Apple LZ4, kept in its .partial file);
   * without it the bytes are the raw piece. `onWritten` hears how many bytes the piece put on
   * the disk as it goes (for write-behind).
   */
  open(piece: Omit<PieceJobSpec, 'lz4'>, describe: string, options: { blob?: KeptBlob; onWritten?: (bytes: number) => void } = {}): PieceSink {
    const spec: PieceJobSpec = { ...piece, lz4: options.blob !== undefined };
    const keeper = options.blob ? new BlobKeeper(options.blob) : undefined;
    const onWritten = options.onWritten ?? (() => undefined);
    if (this.slots.length === 0) return new InThreadSink(spec, keeper, describe, onWritten);
    const slot = this.slots.reduce((best, slot) => (slot.jobs.size < best.jobs.size ? slot : best));
    return slot.open(this.nextId++, spec, keeper, describe, onWritten);
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }
}

function ownsItsBuffer(chunk: Uint8Array): boolean {
  return chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer;
}

/** A copy with an ArrayBuffer of its own (allocUnsafeSlow: not from the pool, not zero-filled first). */
function copyOf(chunk: Uint8Array): Uint8Array {
  const copy = Buffer.allocUnsafeSlow(chunk.length);
  copy.set(chunk);
  return copy;
}

function mapError(error: unknown, describe: string): unknown {
  return error instanceof PieceCheckError ? corruptLayer(describe, error.why, error) : error;
}

class InThreadSink implements PieceSink {
  private readonly job: PieceJob;

  constructor(
    spec: PieceJobSpec,
    private readonly keeper: BlobKeeper | undefined,
    private readonly describe: string,
    private readonly onWritten: (bytes: number) => void,
  ) {
    this.job = new PieceJob(spec);
  }

  private async run<T>(work: () => T | Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      this.keeper?.close();
      throw mapError(error, this.describe);
    }
  }

  private decode(chunk: Uint8Array): void {
    this.job.write(chunk);
    this.onWritten(this.job.takeWritten());
  }

  start = () => this.run(() => this.keeper?.resume(async (chunk) => this.decode(chunk)) ?? 0);
  write = (chunk: Uint8Array) =>
    this.run(() => {
      this.keeper?.take(chunk);
      this.decode(chunk);
    });
  restart = () =>
    this.run(() => {
      this.keeper?.restart();
      this.job.restart();
    });
  finish = () =>
    this.run(() => {
      this.keeper?.finish();
      this.job.finish();
      this.keeper?.close();
    });
  abort = async () => this.keeper?.close();
}

interface JobState {
  /** "disk layer 3 (sha256:…) of host/repo:tag", for a failure's message. */
  describe: string;
  onWritten: (bytes: number) => void;
  inFlight: number;
  wake?: () => void;
  failure?: Error;
  /** The answer awaited now (started, restarted, done, dropped). */
  waiting?: { type: FromWorker['type']; resolve: (reply: FromWorker) => void; reject: (error: Error) => void };
}

class WorkerSlot {
  readonly jobs = new Map<number, JobState>();
  private dead: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (reply: FromWorker) => this.receive(reply));
    worker.on('error', (error) => this.die(error));
    worker.on('exit', (code) => this.die(new Error(`the decode worker exited (code ${code})`)));
  }

  open(id: number, spec: PieceJobSpec, keeper: BlobKeeper | undefined, describe: string, onWritten: (bytes: number) => void): PieceSink {
    const state: JobState = { describe, onWritten, inFlight: 0 };
    this.jobs.set(id, state);
    // Chunks gathered for one message, each with an ArrayBuffer of its own, moved (transferred) to
    // the worker rather than copied: copying every byte of the image into batches, and
    // zero-filling the batches, cost the main thread ~0.3 s of CPU per 391 MiB.
    let batch: Uint8Array[] = [];
    let batched = 0;
    const check = () => {
      if (state.failure) throw state.failure;
    };
    const ask = (message: ToWorker, type: FromWorker['type']) =>
      new Promise<FromWorker>((resolve, reject) => {
        check();
        state.waiting = { type, resolve, reject };
        this.post(message);
      });
    const flush = () => {
      if (batched === 0) return;
      // The .partial file gets the bytes before they move away.
      keeper?.flush();
      state.inFlight += batched;
      this.post({ type: 'data', id, chunks: batch }, batch.map((chunk) => chunk.buffer as ArrayBuffer));
      batch = [];
      batched = 0;
    };
    const send = async (chunk: Uint8Array) => {
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= BATCH_BYTES || batch.length >= BATCH_CHUNKS) flush();
      while (state.inFlight > IN_FLIGHT_BYTES && !state.failure) await new Promise<void>((resolve) => (state.wake = resolve));
      check();
    };
    const keeping = <T>(work: () => T): T => {
      try {
        return work();
      } catch (error) {
        throw mapError(error, describe);
      }
    };
    return {
      start: async () => {
        await ask({ type: 'start', id, spec }, 'started');
        return keeper ? keeper.resume(send).catch((error: unknown) => Promise.reject(mapError(error, describe))) : 0;
      },
      write: async (chunk, given = false) => {
        check();
        const owned = given && ownsItsBuffer(chunk) ? chunk : copyOf(chunk);
        if (keeper) keeping(() => keeper.take(owned));
        await send(owned);
      },
      restart: async () => {
        batch = [];
        batched = 0;
        keeper?.restart();
        await ask({ type: 'restart', id }, 'restarted');
      },
      finish: async () => {
        flush();
        if (keeper) keeping(() => keeper.finish());
        await ask({ type: 'finish', id }, 'done');
        keeper?.close();
        this.jobs.delete(id);
      },
      abort: async () => {
        if (!this.dead && this.jobs.has(id)) {
          // What arrived still goes to the .partial file, for the next pull to resume from.
          if (!state.failure) flush();
          state.failure = undefined;
          await ask({ type: 'drop', id }, 'dropped').catch(() => undefined);
        }
        keeper?.close();
        this.jobs.delete(id);
      },
    };
  }

  private post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  private receive(reply: FromWorker): void {
    const state = this.jobs.get(reply.id);
    if (!state) return;
    if (reply.type === 'ack') {
      state.inFlight -= reply.bytes;
      if (reply.written > 0) state.onWritten(reply.written);
      state.wake?.();
      state.wake = undefined;
    } else if (reply.type === 'failed') {
      const error = reply.check !== undefined ? corruptLayer(state.describe, reply.check) : Object.assign(new Error(reply.message ?? 'the decode worker failed'), reply.code ? { code: reply.code } : {});
      this.fail(state, error);
    } else if (state.waiting?.type === reply.type) {
      const waiting = state.waiting;
      state.waiting = undefined;
      waiting.resolve(reply);
    }
  }

  private fail(state: JobState, error: Error): void {
    state.failure ??= error;
    state.wake?.();
    state.wake = undefined;
    const waiting = state.waiting;
    state.waiting = undefined;
    waiting?.reject(state.failure);
  }

  private die(error: Error): void {
    if (this.dead) return;
    this.dead = error;
    for (const state of this.jobs.values()) this.fail(state, error);
  }
}
