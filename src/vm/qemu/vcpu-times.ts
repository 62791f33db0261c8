import { readFile } from 'node:fs/promises';
import type { VcpuTimes } from '../../shared/cpu-clock.js';

/**
 * The host-side CPU times of a qemu VM's vCPU threads (see src/shared/cpu-clock.ts). QMP's
 * `query-cpus-fast` names the host thread of each vCPU; Linux's /proc/<pid>/task/<tid>/schedstat
 * holds "<ns on a CPU> <ns waiting on a run queue> <timeslices>" for that thread — the
 * scheduler's own nanosecond counters, far finer than the clock ticks of /proc/<pid>/stat.
 * Only the vCPU threads are read: they run the guest's code; qemu's main loop and I/O workers
 * emulate devices and are not guest CPU time.
 */

/** Parses one schedstat line: run and wait time in ms; undefined when it is not one. */
export function parseSchedstat(text: string): VcpuTimes | undefined {
  const match = /^(\d+) (\d+) \d+\s*$/.exec(text);
  return match ? { runMs: Number(match[1]) / 1e6, waitMs: Number(match[2]) / 1e6 } : undefined;
}

/**
 * The vCPU threads' ids in a `query-cpus-fast` reply, each once: single-threaded TCG runs
 * every vCPU on one thread, which must not be counted once per vCPU.
 */
export function vcpuThreadIds(reply: unknown): number[] {
  if (!Array.isArray(reply)) return [];
  const ids = reply.map((cpu) => (cpu as { 'thread-id'?: unknown })['thread-id']).filter((id): id is number => Number.isInteger(id) && (id as number) > 0);
  return [...new Set(ids)];
}

/** Sums the schedstat of `threads` of process `pid`; undefined when any of them cannot be read (the VM is gone, or no /proc). */
export async function readVcpuTimes(pid: number, threads: readonly number[]): Promise<VcpuTimes | undefined> {
  if (threads.length === 0) return undefined;
  const total: VcpuTimes = { runMs: 0, waitMs: 0 };
  for (const tid of threads) {
    const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').catch(() => '');
    const times = parseSchedstat(text);
    if (!times) return undefined;
    total.runMs += times.runMs;
    total.waitMs += times.waitMs;
  }
  return total;
}
