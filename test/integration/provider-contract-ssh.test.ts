/**
 * The shared provider contract (test/support/provider-contract.ts) on the ssh provider: the
 * "machine" is this host behind a REAL OpenSSH sshd with its own host key (test/support/sshd.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProvider } from '../../src/vm/registry.js';
import { describeProviderContract } from '../support/provider-contract.js';
import { sshProviderSettings, startSshd } from '../support/sshd.js';

describeProviderContract('ssh', {
  timeoutMs: 120_000,
  skip: { stop: 'the ssh provider logs in to an existing machine and never stops it (stop only ends the session)' },
  noRestart: 'it logs in to a machine it did not start',
  async setup() {
    const savedHome = process.env.MACVM_HOME;
    const home = await mkdtemp(join(tmpdir(), 'macvm-contract-ssh-home-'));
    process.env.MACVM_HOME = home;
    const sshd = await startSshd();
    const settings = { ...sshProviderSettings(sshd) };
    return {
      image: 'lab-machine',
      provider: ({ detached }) => loadProvider('ssh', { detached, settings }),
      startOptions: { deadline: 60_000 },
      config: { provider: 'ssh', ssh: settings },
      async teardown() {
        await sshd.stop();
        if (savedHome === undefined) delete process.env.MACVM_HOME;
        else process.env.MACVM_HOME = savedHome;
        await rm(home, { recursive: true, force: true });
      },
    };
  },
});
