import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { currentSession } from '../vm/session.js';
import { loadConfig } from './config.js';
import { describeRemovals, sweepDeadSessions } from './gc.js';
import { installInterruptHandler } from './interrupt.js';
import { startProgressServer } from './progress-server.js';
import { startReaper } from './reaper.js';
import type { RunContext } from './run-context.js';
import { registerSession } from './sessions.js';

/**
 * The runner session, in vitest's main process: load and validate macvm.config.ts, sweep
 * what dead sessions left, register this session and start its reaper (which removes the
 * session's VMs if this process dies, even by SIGKILL), serve the progress display, and
 * hand the workers their RunContext. SIGINT/SIGTERM stop the run gracefully (./interrupt.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const config = await loadConfig({ cwd: project.config.root });
  process.env.MACVM_HOME = config.home;
  const swept = await sweepDeadSessions();
  if (swept.removed.length > 0) {
    process.stderr.write(`macvm: removed ${describeRemovals(swept.removed)} left by dead runs (${swept.removed.map((r) => r.id).join(', ')})\n`);
  }
  // Like Playwright's output dir: artifacts are this run's only. Bench history stays. The last
  // run's report goes too: it links to those artifacts, and a run that is killed writes none.
  await rm(join(config.reports.dir, 'artifacts'), { recursive: true, force: true });
  for (const file of ['results.json', 'index.html', 'junit.xml']) await rm(join(config.reports.dir, file), { force: true });
  const session = currentSession();
  const { dir } = await registerSession(session, { cwd: config.root });
  const reaper = await startReaper(session);
  const progress = await startProgressServer(dir, { quiet: Boolean(process.env.CI) });
  const context: RunContext = {
    sessionId: session.id,
    sessionPid: session.pid,
    reportsDir: config.reports.dir,
    progressSocket: progress.socketPath,
    provider: config.provider,
    defaults: config.defaults,
    slots: config.slots,
    timeouts: config.timeouts,
    images: config.images as RunContext['images'],
    snapshots: config.snapshots,
    bench: config.bench,
    providers: config.providers,
    // The config file goes along so the reaper can read the orchard credentials again to delete a VM.
    configFile: config.configFile,
  };
  project.provide('macvm', context);
  const uninstall = installInterruptHandler({
    vitest: project.vitest,
    sessionId: session.id,
    stopReaper: () => reaper.stop(),
    closeProgress: () => progress.close(),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  return async () => {
    uninstall();
    await progress.close();
    // The reaper sweeps anything left, removes the session dir and exits.
    await reaper.stop();
  };
}
