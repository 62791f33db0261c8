/**
 * The shared provider contract (test/support/provider-contract.ts) against the stand-in `tart`
 * (test/support/tart-stand-in.ts), whose `tart ip` names a real sshd on <loopback>:22 playing
 * the macOS guest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTartProvider } from '../../src/vm/tart/provider.js';
import { describeProviderContract } from '../support/provider-contract.js';
import { guestLogin, lowPortUnavailable, startStandInGuest } from '../support/stand-in-guest.js';
import { installFakeTart } from '../support/tart-stand-in.js';

const IMAGE = 'sonoma-base';

describeProviderContract('tart', {
  timeoutMs: 150_000,
  skipAll: await lowPortUnavailable(),
  async setup() {
    const saved = { MACVM_HOME: process.env.MACVM_HOME, PATH: process.env.PATH, FAKE_TART_HOME: process.env.FAKE_TART_HOME, FAKE_TART_IP: process.env.FAKE_TART_IP };
    const dir = await mkdtemp(join(tmpdir(), 'macvm-contract-tart-'));
    const tart = await installFakeTart(dir, IMAGE);
    const guest = await startStandInGuest();
    const login = guestLogin(guest);
    // This process runs `tart` too: a record's cleanup commands (`tart stop`, `tart delete`) run here when gc sweeps.
    Object.assign(process.env, { MACVM_HOME: join(dir, 'macvm-home'), PATH: tart.env.PATH, FAKE_TART_HOME: tart.home, FAKE_TART_IP: guest.host });
    const entry = async (id: string) => (await tart.list()).find((vm) => vm.Name === id);
    return {
      image: IMAGE,
      provider: async ({ detached }) => createTartProvider({ images: { [IMAGE]: login }, detached }),
      startOptions: { deadline: 60_000 },
      config: { provider: 'tart', images: { [IMAGE]: { provider: 'tart', ssh: login } } },
      env: { PATH: tart.env.PATH, FAKE_TART_HOME: tart.home },
      // `tart list` is how Tart says whether a VM runs, and whether it exists at all.
      stopped: async (record) => (await entry(record.id))?.Running !== true,
      removed: async (record) => (await entry(record.id)) === undefined,
      async teardown() {
        await guest.stop();
        for (const [key, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[key];
          else process.env[key] = value;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
