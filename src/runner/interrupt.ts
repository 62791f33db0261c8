import { setTimeout as sleep } from 'node:timers/promises';
import type { Vitest } from 'vitest/node';
import { isSameProcess } from '../util/process-identity.js';
import { listWorkers } from './worker-watch.js';

/**
 * A graceful stop of `macvm test` on SIGINT (Ctrl-C) or SIGTERM, in vitest's main process.
 * vitest's own handler exits at once: the VMs were left to the reaper, workers ran on, and no
 * report was written (the previous run's stayed, linking to artifacts already deleted). Here:
 * 1. the results so far are taken (suites still running are marked interrupted);
 * 2. the session's workers are stopped (SIGTERM, SIGKILL after a few seconds); their VMs die
 *    with them (qemu carries a parent-death signal) and the reaper's goodbye sweep removes the
 *    clones and anything left;
 * 3. the report is written and the process exits 130 (SIGINT) or 143 (SIGTERM).
 * A second signal exits at once.
 */
export interface InterruptOptions {
  vitest: Vitest;
  sessionId: string;
  /** Sweeps the session's VMs and removes the session dir (the reaper's goodbye). */
  stopReaper(): Promise<void>;
  closeProgress(): Promise<void>;
  log(line: string): void;
}

/** What the reporter offers the interrupt (duck-typed: it may be another copy of the module). */
export interface InterruptibleReporter {
  interruptedReport(modules: ReadonlyArray<unknown>, signal: NodeJS.Signals): { write(): Promise<void> };
}

const KEY = Symbol.for('macvm.interrupted');

/** The signal that interrupted this run, if any (the reporter then leaves the report to us). */
export function interruptedBy(): NodeJS.Signals | undefined {
  return (globalThis as unknown as Record<symbol, NodeJS.Signals | undefined>)[KEY];
}

const WORKER_TERM_MS = 3_000;

export function installInterruptHandler(options: InterruptOptions): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  // vitest's handler (its logger's) exits at once; ours replaces it for the run.
  const previous = new Map(signals.map((s) => [s, process.listeners(s)]));
  for (const s of signals) process.removeAllListeners(s);
  const handler = (signal: NodeJS.Signals) => void interrupt(signal);
  for (const s of signals) process.on(s, handler);

  let stopping = false;
  async function interrupt(signal: NodeJS.Signals): Promise<void> {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (stopping) {
      options.log(`macvm: ${signal} again: exiting now; \`macvm gc\` removes what is left.`);
      process.exit(code);
    }
    stopping = true;
    (globalThis as unknown as Record<symbol, NodeJS.Signals>)[KEY] = signal;
    options.log(`macvm: ${signal}: stopping the run's VMs and writing the report…`);
    // `reporters` is vitest's (internal) list of the run's reporters, ours among them.
    const reporters = (options.vitest as unknown as { reporters?: unknown[] }).reporters ?? [];
    const reporter = reporters.find((r) => typeof (r as Partial<InterruptibleReporter>).interruptedReport === 'function') as InterruptibleReporter | undefined;
    // Taken now, before the workers go: tests still running are what was interrupted.
    const report = reporter?.interruptedReport(options.vitest.state.getTestModules(), signal);
    void Promise.resolve(options.vitest.cancelCurrentRun('keyboard-input')).catch(() => {});
    try {
      await stopWorkers(options.sessionId);
      await options.stopReaper();
      await options.closeProgress();
      await report?.write();
    } catch (error) {
      options.log(`macvm: stopping after ${signal} partly failed: ${String(error)}`);
    }
    options.log(`macvm: interrupted by ${signal}; exit code ${code}`);
    process.exit(code);
  }

  return () => {
    for (const s of signals) {
      process.off(s, handler);
      for (const listener of previous.get(s) ?? []) process.on(s, listener as (signal: NodeJS.Signals) => void);
    }
  };
}

async function stopWorkers(sessionId: string): Promise<void> {
  const alive = async () => {
    const live: number[] = [];
    for (const w of listWorkers(sessionId)) if (w.pid !== process.pid && (await isSameProcess(w.pid, w.pidStartTime))) live.push(w.pid);
    return live;
  };
  for (const pid of await alive()) kill(pid, 'SIGTERM');
  const end = Date.now() + WORKER_TERM_MS;
  let live = await alive();
  while (live.length > 0 && Date.now() < end) {
    await sleep(100);
    live = await alive();
  }
  for (const pid of live) kill(pid, 'SIGKILL');
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}
