import type { VmRecord } from './runtime-dir.js';
import type { Clone, RunningVM } from './types.js';

/**
 * A VM known only by its runtime dir: one started by `macvm vm start` in another
 * process. Enough to stop it gracefully and delete its clone.
 */
export interface AttachedVM {
  record: VmRecord;
  dir: string;
  /** destroy() deletes the clone the provider's way (tart: `tart delete`) and the runtime dir. */
  clone: Clone;
  /** Undefined where there is no VM process to stop (never booted, or the ssh provider). */
  running: RunningVM | undefined;
  /**
   * Closes what this process opened to reach the VM (orchard: its port-forward listener), so the
   * process can exit; the VM keeps running. A no-op for providers that open nothing.
   */
  disconnect(): Promise<void>;
}

/**
 * What a provider's attach() gives back. A missing clone means the generic one (its destroy runs
 * the record's cleanup commands, then removes the runtime dir); `running` may be built on it.
 */
export interface AttachedParts {
  clone?: Clone;
  running?: (clone: Clone) => RunningVM | undefined;
  disconnect?: () => Promise<void>;
}
