import { resolve } from 'node:path';
import type { UpdateMode } from './update-mode.js';

/** Project-wide snapshot defaults (the runner passes the config's `snapshots` section here). */
export interface SnapshotDefaults {
  threshold?: number;
  maxDiffPixels?: number;
  maxDiffPixelRatio?: number;
  includeAA?: boolean;
  pathTemplate?: string;
  update?: UpdateMode;
  /** See ImageSnapshotOptions.strictEnvironment. Default false. */
  strictEnvironment?: boolean;
}

let defaults: SnapshotDefaults = {};
let reportsDir: string | undefined;

export function configureImageSnapshots(next: SnapshotDefaults): void {
  defaults = { ...next };
}

export function snapshotDefaults(): SnapshotDefaults {
  return { ...defaults };
}

/** Where mismatch artifacts go (`<dir>/artifacts/snapshots/...`). `undefined` restores the default. */
export function setReportsDir(dir: string | undefined): void {
  reportsDir = dir === undefined ? undefined : resolve(dir);
}

/**
 * The setter's value, else MACVM_REPORTS_DIR, else what the runner says (`fallback`), else
 * `reports/` under the current directory.
 */
export function snapshotReportsDir(fallback?: () => string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (reportsDir) return reportsDir;
  if (env.MACVM_REPORTS_DIR) return resolve(env.MACVM_REPORTS_DIR);
  return resolve(fallback?.() ?? 'reports');
}
