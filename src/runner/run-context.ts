import type { NetworkMode } from '../vm/types.js';

/**
 * What the runner's main process (globalSetup) hands to every test worker through
 * vitest's provide/inject: the session VMs are tagged with, where results go, and the
 * resolved settings that matter in workers. Plain JSON, since it crosses processes.
 */
export interface RunContext {
  sessionId: string;
  sessionPid: number;
  /** Absolute path of the reports directory. */
  reportsDir: string;
  /** Unix socket of the progress display in the main process, if any. */
  progressSocket?: string;
  provider: string;
  defaults: { image?: string; cpus?: number; memory?: string | number; disk?: string | number; display?: boolean; network?: NetworkMode };
  /** Host-wide VM limit per provider. */
  slots: Record<string, number>;
  timeouts: { ready: number; stop: number; slot: number };
  /** Per-image settings from macvm.config.ts (provider overrides, ssh credentials). */
  images: Record<string, { provider?: string; source?: string; ssh?: Record<string, unknown> }>;
  /** The config's `snapshots` section (update mode only when the config names one). */
  snapshots: { update?: 'missing' | 'changed' | 'all' | 'none'; pathTemplate: string; threshold: number; maxDiffPixels?: number; maxDiffPixelRatio?: number; strictEnvironment?: boolean };
  /** The config's `bench` section: the history file (absolute) and the regression gate benchMacVM applies when neither it nor `macvm bench` sets one. */
  bench: { history: string; failOnRegression?: number };
  /** Each provider's own config section (`ssh`, `qemu`, `orchard`, …), as written. */
  providers: Record<string, Record<string, unknown>>;
  /** The config file: recorded where a reaper must read credentials again (orchard). */
  configFile?: string;
}

declare module 'vitest' {
  interface ProvidedContext {
    macvm: RunContext;
  }
}

export const RUN_CONTEXT_KEY = 'macvm' as const;
