/**
 * Making a pull's layers durable without stalling it: a verified piece is journaled only once its
 * bytes are synced to the disk (so a journal line survives a power cut, and a resumed pull can
 * trust it without hashing the piece again), but the sync runs in the background while the next
 * pieces download and decode. Syncs of one file coalesce: at most one runs, and every piece
 * finished meanwhile rides on the next one, instead of a flush per piece.
 *
 * Write-behind: the kernel starts writing dirty pages back only at 10 % of memory or after 30 s,
 * so without a nudge a pull's whole disk (790 MiB in the oci bench) waits in the page cache until
 * the final sync, and then the pull waits for the device (1.6 s there, at ~300 MB/s). So every
 * WRITE_BEHIND_BYTES written also start a sync: the device writes while the network still
 * delivers, and the final sync finds little left.
 */
import type { FileHandle } from 'node:fs/promises';

/** Bytes written to a file between two write-behind syncs. */
export const WRITE_BEHIND_BYTES = 32 * 1024 * 1024;

export class WriteThrough {
  private readonly syncers = new Map<FileHandle, Syncer>();
  private readonly pending: Promise<void>[] = [];
  private readonly unsynced = new Map<FileHandle, number>();

  /** `bytes` more were written to `file`: past WRITE_BEHIND_BYTES since the last nudge, a sync starts. */
  wrote(file: FileHandle, bytes: number): void {
    const total = (this.unsynced.get(file) ?? 0) + bytes;
    if (total < WRITE_BEHIND_BYTES) {
      this.unsynced.set(file, total);
      return;
    }
    // after() counts from zero again: the sync it starts covers these bytes.
    this.after(file, async () => undefined);
  }

  /** Runs `then` (the journal line) once everything written to `file` so far is on the disk. */
  after(file: FileHandle, then: () => Promise<void>): void {
    this.unsynced.set(file, 0);
    let syncer = this.syncers.get(file);
    if (!syncer) this.syncers.set(file, (syncer = new Syncer(file)));
    const done = syncer.sync().then(then);
    // Failures surface in settle(); until then nobody awaits this promise.
    done.catch(() => undefined);
    this.pending.push(done);
  }

  /** Waits for every sync and journal line so far; rethrows the first failure. */
  async settle(): Promise<void> {
    await Promise.all(this.pending);
  }
}

class Syncer {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly file: FileHandle) {}

  /** Resolves after a datasync that started after this call. */
  sync(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) {
      this.running = this.file.datasync().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.queued = this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.sync();
      });
    return this.queued;
  }
}
