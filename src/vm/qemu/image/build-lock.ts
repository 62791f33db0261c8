import { open, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError } from '../../../errors.js';
import { isSameProcess, processStartTime } from '../../../util/process-identity.js';

/**
 * One build of an image at a time (`macvm doctor --fix` and a test run may both start
 * one): a lock file beside the image dir holding the builder's pid and start time. A lock
 * whose process is gone is stale and taken over, so a killed build never blocks the next.
 */
export async function withBuildLock<T>(imageDir: string, onWait: (pid: number) => void, work: () => Promise<T>, timeoutMs = 20 * 60_000): Promise<T> {
  const lock = join(dirname(imageDir), `.${basename(imageDir)}.lock`);
  const until = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o644);
      await handle.writeFile(JSON.stringify({ pid: process.pid, startTime: await processStartTime(process.pid) }));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readHolder(lock);
    if (!holder || !(await isSameProcess(holder.pid, holder.startTime))) {
      await rm(lock, { force: true });
      continue;
    }
    if (Date.now() > until) {
      throw new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Another build of ${basename(imageDir)} (pid ${holder.pid}) has held ${lock} for too long.`, {
        hint: `Wait for it to finish, or stop pid ${holder.pid} and build again.`,
      });
    }
    if (!announced) onWait(holder.pid);
    announced = true;
    await sleep(500);
  }
  try {
    await removeLeftovers(imageDir);
    return await work();
  } finally {
    await rm(lock, { force: true });
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

/** Temp dirs of builds that were killed (we hold the lock, so none of them is running). */
async function removeLeftovers(imageDir: string): Promise<void> {
  const parent = dirname(imageDir);
  const prefixes = [`.${basename(imageDir)}.building-`, `.${basename(imageDir)}.old-`];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (prefixes.some((p) => name.startsWith(p))) await rm(join(parent, name), { recursive: true, force: true });
  }
}
