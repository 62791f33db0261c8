import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSameProcess, processStartTime, selfStartTime } from '../util/process-identity.js';
import { removeOwnRuntimeDirsSync } from '../vm/runtime-dir.js';
import { destroyLeftover, runtimeDirs } from './gc.js';
import type { RunContext } from './run-context.js';
import { sessionDir } from './sessions.js';

/**
 * A test worker's tie to its runner. A vitest worker whose runner died (SIGKILL, a crash) is
 * not told: it would run test code — and take slots, boot VMs — until its next message to the
 * dead runner. So each worker:
 * - registers itself in the session dir (`workers/<pid>.json`), so the runner can stop its
 *   workers on Ctrl-C and the reaper can wait for (and, if they hang, kill) them;
 * - watches the runner: the IPC channel closing, and an unref'd poll of the runner's pid and
 *   start time. When the runner is gone, it stops the session's VMs, deletes their clones and
 *   exits. Its slots and tickets die with it.
 */
interface WorkerState {
  started: boolean;
  gone: AbortController;
  stopping?: Promise<void>;
}

const KEY = Symbol.for('macvm.worker-watch');
/** One per process, whichever copy of this module (src, dist, vitest's module runner) loads it. */
function state(): WorkerState {
  const g = globalThis as unknown as Record<symbol, WorkerState | undefined>;
  return (g[KEY] ??= { started: false, gone: new AbortController() });
}

/** Aborted once this worker's runner is gone: slot waits and boots stop there. */
export function runnerGoneSignal(): AbortSignal {
  return state().gone.signal;
}

export interface WorkerRecord {
  pid: number;
  pidStartTime?: string;
}

export function workersDir(sessionId: string, home?: string): string {
  return join(sessionDir(sessionId, home), 'workers');
}

/** The workers registered in a session (a missing dir is none). */
export function listWorkers(sessionId: string, home?: string): WorkerRecord[] {
  const dir = workersDir(sessionId, home);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    try {
      return [JSON.parse(readFileSync(join(dir, name), 'utf8')) as WorkerRecord];
    } catch {
      return [];
    }
  });
}

/** Starts the watch in this worker (idempotent). Does nothing outside a `macvm test` run. */
export function watchRunner(context: RunContext, options: { pollMs?: number } = {}): void {
  const s = state();
  if (s.started || !context.sessionPid || context.sessionPid === process.pid || !context.progressSocket) return;
  s.started = true;
  try {
    const dir = workersDir(context.sessionId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const record: WorkerRecord = { pid: process.pid, pidStartTime: selfStartTime() };
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(record), { mode: 0o600 });
    // Not removed at exit: that would open a window where this process still runs (and holds
    // its slot) but no longer looks registered. Readers check pid + start time; the session dir goes at the end.
  } catch {
    // The session dir is gone already: the runner is dead or done; the poll below decides.
  }
  // However this worker exits, a runtime dir it was still tagging goes with it; once its runner
  // is gone, so do the clones it made: the reaper's last sweep may be over by then.
  process.once('exit', () => removeOwnRuntimeDirsSync({ ownedToo: state().gone.signal.aborted }));
  const runner = processStartTime(context.sessionPid);
  const check = async () => {
    if (!(await isSameProcess(context.sessionPid, await runner))) void stopOrphan(context, `runner pid ${context.sessionPid} is gone`);
  };
  // The IPC channel to the runner (vitest's forks pool) closes the moment it dies.
  process.once('disconnect', () => void check());
  const timer = setInterval(() => void check(), options.pollMs ?? 250);
  timer.unref();
}

/** The runner is gone: stop the session's VMs (all orphans now), then exit. */
export function stopOrphan(context: RunContext, why: string): Promise<void> {
  const s = state();
  s.stopping ??= (async () => {
    s.gone.abort(new Error(why));
    try {
      process.stderr.write(`macvm worker ${process.pid}: ${why}; stopping the session's VMs and exiting\n`);
    } catch {
      // stderr may be a closed pipe now
    }
    // Twice: a boot in flight during the first pass may have spawned one more VM.
    for (let pass = 0; pass < 2; pass++) {
      const mine = (await runtimeDirs()).filter((d) => d.record?.session === context.sessionId && !d.record.detached);
      await Promise.all(mine.map(({ dir, record }) => destroyLeftover(dir, record, 1_000).catch(() => [])));
      await new Promise((done) => setTimeout(done, 100));
    }
    process.exit(1);
  })();
  return s.stopping;
}
