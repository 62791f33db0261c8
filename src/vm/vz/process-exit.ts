import type { ChildProcess } from 'node:child_process';
import { isSameProcess, waitForExit } from '../../util/process-identity.js';
import type { ExitInfo } from '../types.js';

/**
 * Resolves when the process `pid` that started at `startTime` is gone (a zombie counts as
 * gone) — the way to see a detached vmhost exit from a process that is not its parent, so
 * there is no exit code to be had. Polls unref'd: watching a VM never keeps this process alive.
 */
export async function watchProcessExit(pid: number, startTime: string | undefined): Promise<ExitInfo> {
  await waitForExit(pid, startTime);
  return { code: null, signal: null };
}

/** Gone, a zombie, or its PID now belongs to another process: never signal it then. */
export async function hasExited(pid: number, startTime: string | undefined): Promise<boolean> {
  return !(await isSameProcess(pid, startTime));
}

/** Whether `promise` settles within `ms` (a ref'd timer: the caller is waiting on purpose). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const, () => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A child's exit, with its code or signal (a child that could not be spawned: nulls). */
export function childExit(child: ChildProcess): Promise<ExitInfo> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
}
