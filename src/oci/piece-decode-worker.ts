/**
 * A decode worker thread: runs PieceJobs (decode, hash, sparse write) for the main thread, which
 * keeps the network and the compressed side (BlobKeeper). Several jobs may interleave on one
 * worker; each message names its job, and messages are handled in order, so an answer to one
 * covers every earlier message of that job.
 *
 *   main → worker  start {spec} | data {chunks} | restart | finish | drop
 *   worker → main  started | ack {bytes, written} | restarted | done | dropped | failed {check | message, code}
 */
import { parentPort } from 'node:worker_threads';
import { messageOf } from '../errors.js';
import { PieceCheckError, PieceJob, type PieceJobSpec } from './piece-job.js';

export type ToWorker =
  | { type: 'start'; id: number; spec: PieceJobSpec }
  | { type: 'data'; id: number; chunks: Uint8Array[] }
  | { type: 'restart'; id: number }
  | { type: 'finish'; id: number }
  | { type: 'drop'; id: number };

export type FromWorker =
  | { type: 'started'; id: number }
  /** `bytes` of the blob taken; `written` bytes of it went to the disk since the last ack. */
  | { type: 'ack'; id: number; bytes: number; written: number }
  | { type: 'restarted'; id: number }
  | { type: 'done'; id: number }
  | { type: 'dropped'; id: number }
  | { type: 'failed'; id: number; check?: string; message?: string; code?: string };

const jobs = new Map<number, PieceJob>();
const port = parentPort!;

function fail(id: number, error: unknown): void {
  jobs.delete(id);
  const reply: FromWorker =
    error instanceof PieceCheckError ? { type: 'failed', id, check: error.why } : { type: 'failed', id, message: messageOf(error), code: (error as NodeJS.ErrnoException)?.code };
  port.postMessage(reply);
}

function handle(message: ToWorker): FromWorker | undefined {
  const { id } = message;
  if (message.type === 'start') {
    jobs.set(id, new PieceJob(message.spec));
    return { type: 'started', id };
  }
  if (message.type === 'drop') {
    jobs.delete(id);
    return { type: 'dropped', id };
  }
  // A job that failed already said so; what was still on its way is dropped quietly.
  const job = jobs.get(id);
  if (!job) return undefined;
  if (message.type === 'data') {
    let bytes = 0;
    for (const chunk of message.chunks) {
      job.write(chunk);
      bytes += chunk.byteLength;
    }
    return { type: 'ack', id, bytes, written: job.takeWritten() };
  }
  if (message.type === 'restart') {
    job.restart();
    return { type: 'restarted', id };
  }
  jobs.delete(id);
  job.finish();
  return { type: 'done', id };
}

port.on('message', (message: ToWorker) => {
  try {
    const reply = handle(message);
    if (reply) port.postMessage(reply);
  } catch (error) {
    fail(message.id, error);
  }
});
