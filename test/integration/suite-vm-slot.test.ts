/**
 * A suite's host slot is given back only after its VM process has exited and its clone is
 * gone. Handed back earlier (the first landing did, from a disposer that ran before the
 * stop), a waiting runner boots its VM while this one is still shutting down, and the host
 * briefly runs one VM more than macOS's licence allows.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRunContext } from '../../src/runner/default-context.js';
import { listSlotHolders } from '../../src/runner/slots.js';
import { startSuiteVM } from '../../src/runner/suite-vm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

describe('suite VM slot', () => {
  let testHome: TestHome;
  beforeAll(async () => {
    testHome = await createTestHome();
  });
  afterAll(async () => {
    await testHome?.cleanup();
  });

  it('keeps the slot while the VM stops and frees it once the qemu process and clone are gone', async () => {
    const context = defaultRunContext({ ...process.env, MACVM_HOME: testHome.home, MACVM_PROVIDER: 'qemu' });
    const suiteVM = await startSuiteVM('slot order', { image: 'linux-test', cpus: 1, memory: '256MiB' }, context);
    expect(await listSlotHolders('qemu', testHome.home)).toMatchObject([{ suite: 'slot order', pid: process.pid }]);
    expect((await testHome.leftovers()).qemuPids).toHaveLength(1);

    // Sample while the suite tears down: the slot may be free only once qemu is gone.
    const samples: Array<{ slotHeld: boolean; qemuAlive: boolean; runtimeDirs: number }> = [];
    let tearingDown = true;
    const sampler = (async () => {
      while (tearingDown) {
        const [holders, left] = await Promise.all([listSlotHolders('qemu', testHome.home), testHome.leftovers()]);
        samples.push({ slotHeld: holders.length > 0, qemuAlive: left.qemuPids.length > 0, runtimeDirs: left.runtimeDirs.length });
        await sleep(20);
      }
    })();
    const seenAfterStop: unknown[] = [];
    suiteVM!.vm.onStopped(async () => {
      seenAfterStop.push(await testHome.leftovers());
    });
    await suiteVM!.release();
    tearingDown = false;
    await sampler;

    // The graceful power-down takes long enough to be sampled while qemu still runs.
    expect(samples.filter((s) => s.qemuAlive).length).toBeGreaterThan(2);
    expect(samples.filter((s) => !s.slotHeld && (s.qemuAlive || s.runtimeDirs > 0))).toEqual([]);
    expect(seenAfterStop).toEqual([{ runtimeDirs: [], qemuPids: [] }]);
    expect(await listSlotHolders('qemu', testHome.home)).toEqual([]);
  });
});
