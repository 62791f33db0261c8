/**
 * The shared provider contract (test/support/provider-contract.ts) against the stand-in Orchard
 * controller (test/support/orchard-stand-in.ts), whose port-forward reaches a real sshd playing
 * the macOS guest.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOrchardProvider, type OrchardProviderOptions } from '../../src/vm/orchard/provider.js';
import { orchardConfig, orchardSettings, startOrchardStandIn } from '../support/orchard-stand-in.js';
import { describeProviderContract } from '../support/provider-contract.js';
import { startSshd } from '../support/sshd.js';

const ORCHARD_ENV = ['ORCHARD_URL', 'ORCHARD_SERVICE_ACCOUNT_NAME', 'ORCHARD_SERVICE_ACCOUNT_TOKEN', 'ORCHARD_HOME'] as const;

describeProviderContract('orchard', {
  timeoutMs: 150_000,
  noRestart: 'booting again on the controller would clone the image anew',
  async setup() {
    const saved = Object.fromEntries(['MACVM_HOME', ...ORCHARD_ENV].map((key) => [key, process.env[key]]));
    const dir = await mkdtemp(join(tmpdir(), 'macvm-contract-orchard-'));
    // Neither the ORCHARD_* variables nor ~/.orchard of whoever runs the tests may leak in.
    for (const key of ORCHARD_ENV) delete process.env[key];
    Object.assign(process.env, { MACVM_HOME: join(dir, 'macvm-home'), ORCHARD_HOME: join(dir, 'orchard-home') });
    const sshd = await startSshd();
    const fake = await startOrchardStandIn(sshd);
    const config = orchardConfig(fake, sshd);
    // Where gc's cleanup command reads the controller's credentials again (none are written to vm.json).
    const configFile = join(dir, 'macvm.config.ts');
    await writeFile(configFile, `export default ${JSON.stringify(config)};\n`);
    return {
      image: 'sonoma',
      provider: async ({ detached }) => createOrchardProvider({ ...(orchardSettings(fake, sshd, { configFile }) as OrchardProviderOptions), env: { ORCHARD_HOME: join(dir, 'orchard-home') }, pollIntervalMs: 50, detached }),
      startOptions: { deadline: 60_000 },
      config,
      env: { ORCHARD_HOME: join(dir, 'orchard-home') },
      // Orchard cannot stop a VM and keep it: stopped and removed both mean deleted on the controller.
      stopped: async (record) => !fake.vms.has(record.id),
      removed: async (record) => !fake.vms.has(record.id),
      async teardown() {
        await fake.close();
        await sshd.stop();
        for (const [key, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[key];
          else process.env[key] = value;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
