/**
 * CPU time of a VM's virtual CPUs as the HOST's scheduler counts it. A guest under emulation
 * (qemu TCG) has no steal-time accounting: while the host runs something else on the CPU its
 * vCPU thread wanted, the guest's clocks keep going and charge that time to whatever guest
 * process was running. The host knows better — per thread it counts time on a CPU and time
 * spent runnable but waiting for one (/proc/<pid>/task/<tid>/schedstat, in ns) — so a
 * provider that can read its VM's vCPU threads offers these two numbers, and a benchmark
 * takes the wait (the guest's lost time) out of the guest's own CPU figures.
 *
 * Providers implement it where they can see their VM's threads (qemu on Linux); elsewhere
 * (ssh, a VM on another machine) there is no clock, and the guest's own figures stand.
 */
export interface VcpuTimes {
  /** ms the vCPU threads ran on a host CPU, summed over vCPUs, since they started. */
  runMs: number;
  /** ms they were runnable but waited for a host CPU (the guest's steal, which it cannot see). */
  waitMs: number;
}

/** Reads the running VM's VcpuTimes now; undefined when they cannot be read (any more). */
export type CpuClock = () => Promise<VcpuTimes | undefined>;
