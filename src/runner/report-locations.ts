import { loadConfig } from './config.js';

/** Where `macvm report` and `macvm bench` find a run's files, and the config's regression gate. */
export interface ReportLocations {
  /** Absolute. */
  reportsDir: string;
  /** The bench history file, absolute. */
  benchHistory: string;
  /** The config's `bench.failOnRegression`. */
  failOnRegression?: number;
}

/**
 * As `macvm test` resolves them, so these commands read what a run wrote: `--reports-dir` (when
 * given) beats MACVM_REPORTS_DIR, which beats the config's `reports.dir`; the bench history
 * follows the reports unless the config's `bench.history` names its own file. A bad config
 * fails here as it would under `macvm test`.
 */
export async function reportLocations(reportsDirFlag: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<ReportLocations> {
  const config = await loadConfig({ cwd, env: reportsDirFlag === undefined ? env : { ...env, MACVM_REPORTS_DIR: reportsDirFlag } });
  return { reportsDir: config.reports.dir, benchHistory: config.bench.history, failOnRegression: config.bench.failOnRegression };
}
