import { closeSync, fstatSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ConsoleMarkerOptions {
  /** Stops watching; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Fallback re-read period, ms (default 250), for what a watch can miss (file systems
   * without change events, coalesced events). Each read takes only the appended bytes.
   */
  pollMs?: number;
}

/**
 * Resolves the moment `marker` is in the console log at `path`, which the VM appends to as it
 * runs. The log's directory is watched (the file may not exist yet), and each change reads only
 * the bytes appended since the last read, so the cost does not grow with the log; a marker
 * written in pieces, or split across two reads, is still found (the last `marker.length − 1`
 * bytes are carried over). A log that shrinks (truncated, replaced) is read again from its start.
 *
 * Reads are synchronous on purpose: a console log is a local file, a read of its new bytes takes
 * microseconds, and async reads cost thread hops that on a loaded host each wait for a CPU, which
 * is exactly the latency this watch exists to avoid.
 */
export function waitForConsoleMarker(path: string, marker: string, options: ConsoleMarkerOptions = {}): Promise<void> {
  if (marker.length === 0) return Promise.resolve();
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const name = basename(path);

  return new Promise<void>((resolve, reject) => {
    let fd: number | undefined;
    let offset = 0;
    const scanner = markerScanner(marker);
    let watcher: FSWatcher | undefined;
    let done = false;
    const chunk = Buffer.alloc(64 * 1024);

    const finish = (error?: unknown): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      watcher?.close();
      signal?.removeEventListener('abort', onAbort);
      if (fd !== undefined) closeSync(fd);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onAbort = (): void => finish(signal?.reason ?? new Error('aborted'));

    /** Reads what was appended since the last call; true once the marker has been seen. */
    const scan = (): boolean => {
      if (fd === undefined) {
        try {
          fd = openSync(path, 'r');
        } catch {
          return false; // not created yet: the directory watch says when it is
        }
      }
      if (fstatSync(fd).size < offset) {
        offset = 0;
        scanner.reset();
      }
      for (;;) {
        const read = readSync(fd, chunk, 0, chunk.length, offset);
        if (read === 0) return false;
        offset += read;
        if (scanner.push(chunk.subarray(0, read))) return true;
      }
    };
    const check = (): void => {
      if (done) return;
      try {
        if (scan()) finish();
      } catch (error) {
        finish(error);
      }
    };

    signal?.addEventListener('abort', onAbort, { once: true });
    // Both keep the process alive while it waits (nothing else may: the VM process is unref'd),
    // as a plain script's `await startMacVM(…)` needs; finish() releases them.
    const timer = setInterval(check, options.pollMs ?? 250);
    try {
      watcher = watch(dirname(path), (_event, changed) => {
        // Some platforms give no file name: then any change in the directory is a reason to look.
        if (changed === null || changed === name) check();
      });
      watcher.on('error', () => {}); // the directory went away: the poll carries on until the caller gives up
    } catch {
      // No watch here (a file system without one): the poll alone finds the marker.
    }
    check();
  });
}

/**
 * Finds `marker` in a byte stream fed in arbitrary pieces: push() is true once it has been seen,
 * even when it arrived split across pushes (or across a multi-byte character).
 */
export function markerScanner(marker: string): { push(bytes: Buffer): boolean; reset(): void } {
  const needle = Buffer.from(marker, 'utf8');
  let carry = Buffer.alloc(0);
  let seen = needle.length === 0;
  return {
    push(bytes) {
      if (seen) return true;
      const window = carry.length ? Buffer.concat([carry, bytes]) : bytes;
      seen = window.includes(needle);
      // Keep only what could still begin the marker; copied, since `bytes` is a reused buffer.
      carry = Buffer.from(window.subarray(Math.max(0, window.length - (needle.length - 1))));
      return seen;
    },
    reset() {
      carry = Buffer.alloc(0);
      seen = needle.length === 0;
    },
  };
}
