import type { Artifact, VmFacts } from '../shared/results.js';

/**
 * What macvm attaches to vitest tasks in the workers; vitest carries task meta to the
 * reporter in the main process, which turns it into results.json.
 */
declare module '@vitest/runner' {
  interface TaskMeta {
    /** On a withMacVM() suite: the facts of its VM (plus how long it waited for a slot). */
    macvm?: VmFacts & { slotWaitMs?: number; prewarmed?: boolean };
    /** On a test: screenshots, snapshot diffs and other files saved for it. On a suite: the console log of a VM that never became ready. */
    macvmArtifacts?: Artifact[];
    /** On a failed test: the guest console's last lines when it failed. */
    macvmConsoleTail?: string;
  }
}

export {};
