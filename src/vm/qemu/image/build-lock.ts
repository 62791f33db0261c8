import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MacvmError } from '../../../errors.js';
import { withFileLock } from '../../../util/file-lock.js';

/**
 * One build of an image at a time (`macvm doctor --fix` and a test run may both start
 * one): a lock file beside the image dir holding the builder's pid and start time. A lock
 * whose process is gone is stale and taken over, so a killed build never blocks the next.
 */
export async function withBuildLock<T>(imageDir: string, onWait: (pid: number) => void, work: () => Promise<T>, timeoutMs = 20 * 60_000): Promise<T> {
  const lock = join(dirname(imageDir), `.${basename(imageDir)}.lock`);
  const onTimeout = (pid: number) =>
    new MacvmError('MACVM_IMAGE_BUILD_FAILED', `Another build of ${basename(imageDir)} (pid ${pid}) has held ${lock} for too long.`, {
      hint: `Wait for it to finish, or stop pid ${pid} and build again.`,
    });
  return withFileLock(lock, { onWait, timeoutMs, onTimeout }, async () => {
    await removeLeftovers(imageDir);
    return work();
  });
}

/** Temp dirs of builds that were killed (we hold the lock, so none of them is running). */
async function removeLeftovers(imageDir: string): Promise<void> {
  const parent = dirname(imageDir);
  const prefixes = [`.${basename(imageDir)}.building-`, `.${basename(imageDir)}.old-`];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (prefixes.some((p) => name.startsWith(p))) await rm(join(parent, name), { recursive: true, force: true });
  }
}
