import type { VcpuTimes } from '../shared/cpu-clock.js';
import type { NodeOnSide } from './node-runtime.js';
import type { BenchShell } from './shell.js';
import type { CommandTimer } from './timers.js';

export type Side = 'host' | 'guest';

/** One side of a benchmark, ready to run rounds: its shell, temp dir, timer and node. */
export interface PreparedSide {
  side: Side;
  shell: BenchShell;
  dir: string;
  timer?: CommandTimer;
  node?: NodeOnSide;
}

/** One round's figures on one side, as that side measured them. */
export interface Reading {
  /** Wall time: a command's run, or a function's median call. */
  wallMs: number;
  /** CPU time, where measured: a command's (own + children), or a function's per call. */
  cpuMs?: number;
}

/** What one exec of k rounds on one side gave. */
export interface SideBlock {
  rounds: Reading[];
  /** The rounds' own wall time inside the exec, summed (what batching.ts weighs the overhead against), ms. */
  roundsMs: number;
  /** Wall time of the exec as the runner saw it, ms. */
  execMs: number;
  /** The vCPU times the host counted across the exec, where the side has a cpuClock (a VM the host runs). */
  vcpu?: VcpuTimes;
}

/**
 * Runs `exec` bracketed by the side's vCPU clock, when it has one: the difference of two
 * readings is what the host's scheduler counted for the VM's vCPUs during the exec.
 */
export async function withVcpuClock<T>(shell: BenchShell, exec: () => Promise<T>): Promise<{ value: T; execMs: number; vcpu?: VcpuTimes }> {
  const before = await shell.cpuClock?.();
  const started = performance.now();
  const value = await exec();
  const execMs = performance.now() - started;
  const after = before ? await shell.cpuClock?.() : undefined;
  const vcpu = before && after ? { runMs: after.runMs - before.runMs, waitMs: after.waitMs - before.waitMs } : undefined;
  return vcpu ? { value, execMs, vcpu } : { value, execMs };
}

/**
 * A guest round's CPU time with the host's steal taken out. The guest (under TCG) charges
 * time its vCPU spent waiting for a host CPU to whatever it was running; across the exec,
 * the vCPU was busy run + wait ms of which it ran `run`, so each round keeps that share of
 * its CPU time: cpu × run / (run + wait). The wait is spread over the exec's busy time, as
 * the host cannot tell which guest process was running when it waited.
 */
export function withoutSteal(cpuMs: number, vcpu: VcpuTimes): number {
  const busy = vcpu.runMs + vcpu.waitMs;
  return busy > 0 ? (cpuMs * vcpu.runMs) / busy : cpuMs;
}
