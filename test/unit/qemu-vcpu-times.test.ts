import { readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parseSchedstat, readVcpuTimes, vcpuThreadIds } from '../../src/vm/qemu/vcpu-times.js';

// The parsing is checked on literal text; the reading on this very process's threads, which
// the kernel accounts the same way as a qemu vCPU thread (Linux only).
describe('host-side vCPU times', () => {
  test('a schedstat line is run and wait time in ns; anything else is not one', () => {
    expect(parseSchedstat('1500000000 250000000 42\n')).toEqual({ runMs: 1500, waitMs: 250 });
    expect(parseSchedstat('')).toBeUndefined();
    expect(parseSchedstat('1 2\n')).toBeUndefined();
  });

  test('query-cpus-fast names each vCPU thread once, even when one thread runs them all', () => {
    const reply = [
      { 'cpu-index': 0, 'thread-id': 4711, target: 'x86_64' },
      { 'cpu-index': 1, 'thread-id': 4712, target: 'x86_64' },
    ];
    expect(vcpuThreadIds(reply)).toEqual([4711, 4712]);
    // Single-threaded TCG: every vCPU reports the same thread.
    expect(vcpuThreadIds([{ 'thread-id': 9 }, { 'thread-id': 9 }])).toEqual([9]);
    expect(vcpuThreadIds({ error: 'x' })).toEqual([]);
    expect(vcpuThreadIds([{ 'cpu-index': 0 }])).toEqual([]);
  });

  test.runIf(process.platform === 'linux')('reads real threads, grows as they run, and says undefined for a thread that is gone', async () => {
    const threads = readdirSync(`/proc/${process.pid}/task`).map(Number);
    const before = await readVcpuTimes(process.pid, threads);
    expect(before).toBeDefined();
    let x = 0;
    for (let i = 0; i < 2e7; i++) x += i % 7;
    expect(x).toBeGreaterThan(0);
    const after = await readVcpuTimes(process.pid, threads);
    expect(after!.runMs).toBeGreaterThan(before!.runMs);
    expect(after!.waitMs).toBeGreaterThanOrEqual(before!.waitMs);
    expect(await readVcpuTimes(process.pid, [2 ** 22 + 12345])).toBeUndefined();
    expect(await readVcpuTimes(process.pid, [])).toBeUndefined();
  });
});
