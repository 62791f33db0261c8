import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { isSameProcess, processStartTime } from './process-identity.js';

export interface FileLockOptions {
  /** Called once, with the holder's pid, when the lock is taken by another live process. */
  onWait?: (pid: number) => void;
  timeoutMs: number;
  /** The error to throw when the holder keeps the lock past timeoutMs. */
  onTimeout: (holderPid: number) => Error;
  pollMs?: number;
}

/**
 * Runs `work` while holding `lockPath`: a file created exclusively, holding the holder's
 * pid and start time. A lock whose process is gone is stale and taken over, so a killed
 * holder never blocks the next one.
 */
export async function withFileLock<T>(lockPath: string, options: FileLockOptions, work: () => Promise<T>): Promise<T> {
  const until = Date.now() + options.timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(JSON.stringify({ pid: process.pid, startTime: await processStartTime(process.pid) }));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readHolder(lockPath);
    if (!holder || !(await isSameProcess(holder.pid, holder.startTime))) {
      await rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > until) throw options.onTimeout(holder.pid);
    if (!announced) options.onWait?.(holder.pid);
    announced = true;
    await sleep(options.pollMs ?? 500);
  }
  try {
    return await work();
  } finally {
    await rm(lockPath, { force: true });
  }
}

async function readHolder(lock: string): Promise<{ pid: number; startTime?: string } | undefined> {
  try {
    const holder = JSON.parse(await readFile(lock, 'utf8')) as { pid?: unknown; startTime?: unknown };
    return typeof holder.pid === 'number' ? { pid: holder.pid, startTime: typeof holder.startTime === 'string' ? holder.startTime : undefined } : undefined;
  } catch {
    // Being written this instant, or garbage: a fresh lock gets a moment, garbage is stale.
    await sleep(200);
    try {
      const holder = JSON.parse(await readFile(lock, 'utf8')) as { pid?: unknown };
      return typeof holder.pid === 'number' ? { pid: holder.pid } : undefined;
    } catch {
      return undefined;
    }
  }
}
