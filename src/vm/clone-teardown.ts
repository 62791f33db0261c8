import { rm } from 'node:fs/promises';
import type { RunningVM } from './types.js';

/**
 * What destroying a clone means for every provider that keeps its clone in the runtime
 * dir: stop the VM at once (no graceful wait: the clone is going away), then delete the
 * dir even if stopping failed.
 */
export async function stopAndRemoveClone(running: RunningVM | undefined, runtimeDir: string): Promise<void> {
  try {
    await running?.stop({ gracefulMs: 0 });
  } finally {
    await rm(runtimeDir, { recursive: true, force: true });
  }
}
