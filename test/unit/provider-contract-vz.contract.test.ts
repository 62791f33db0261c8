/**
 * The shared provider contract (test/support/provider-contract.ts) against the vz stand-ins: the
 * real vmhost with the stand-in addon (test/support/vz-stand-in.ts), the guest's address from a
 * replayed `arp -an`, and a real sshd on <loopback>:22 playing the macOS guest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSameProcess } from '../../src/util/process-identity.js';
import { createVzProvider } from '../../src/vm/vz/provider.js';
import { describeProviderContract } from '../support/provider-contract.js';
import { guestLogin, lowPortUnavailable, startStandInGuest } from '../support/stand-in-guest.js';
import { arpForClones, makeVzBundle, standInVmhost } from '../support/vz-stand-in.js';

describeProviderContract('vz', {
  timeoutMs: 150_000,
  skipAll: await lowPortUnavailable(),
  async setup() {
    const savedHome = process.env.MACVM_HOME;
    const dir = await mkdtemp(join(tmpdir(), 'macvm-contract-vz-'));
    const home = join(dir, 'home');
    process.env.MACVM_HOME = home;
    await makeVzBundle(home, 'sonoma');
    const guest = await startStandInGuest();
    const login = guestLogin(guest);
    return {
      image: 'sonoma',
      provider: async ({ detached }) =>
        createVzProvider({
          images: { sonoma: login },
          allowFullCopy: true, // this host's ext4 has no clonefile; on APFS the clone path is taken
          detached,
          vmhost: standInVmhost(join(dir, 'vz-calls.log')),
          address: { leasesPath: join(dir, 'no-leases'), arpCommand: arpForClones(guest.host), intervalMs: 50 },
        }),
      startOptions: { deadline: 60_000 },
      config: { provider: 'vz', images: { sonoma: { provider: 'vz', ssh: login } } },
      stopped: async (record) => !(await isSameProcess(record.pid!, record.pidStartTime)),
      async teardown() {
        await guest.stop();
        if (savedHome === undefined) delete process.env.MACVM_HOME;
        else process.env.MACVM_HOME = savedHome;
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
