/**
 * The shared provider contract (test/support/provider-contract.ts) on real qemu guests: the
 * linux-test image booted under this host's accelerator (TCG here), in a private MACVM_HOME.
 */
import { expect } from 'vitest';
import { loadProvider } from '../../src/vm/registry.js';
import { isSameProcess } from '../../src/util/process-identity.js';
import { describeProviderContract } from '../support/provider-contract.js';
import { createTestHome } from '../support/vm-home.js';

describeProviderContract('qemu', {
  // Boot, SSH and a CLI process or three, on a 2-core host other work shares.
  timeoutMs: 300_000,
  async setup() {
    const home = await createTestHome();
    return {
      image: 'linux-test',
      provider: ({ detached }) => loadProvider('qemu', { detached }),
      startOptions: { cpus: 1, memory: '256MiB', deadline: 150_000 },
      config: { provider: 'qemu' },
      stopped: async (record) => !(await isSameProcess(record.pid!, record.pidStartTime)),
      // The overlay lives in the runtime dir; no qemu process may be left under this home.
      removed: async () => (await home.leftovers()).qemuPids.length === 0,
      async teardown() {
        expect(await home.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
        await home.cleanup();
      },
    };
  },
});
