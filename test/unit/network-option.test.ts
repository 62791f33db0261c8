/**
 * `network` is validated where it is written (config: defaults.network, with did-you-mean) and
 * refused by providers that cannot choose a guest network, instead of being silently ignored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/runner/config.js';
import { startMacVM } from '../../src/machine/start.js';
import { sshProviderSettings, startSshd, type Sshd } from '../support/sshd.js';

const host = { platform: 'linux' as const, arch: 'x64', cpus: 2, totalMemoryBytes: 8 * 2 ** 30 };
const resolveRaw = (raw: unknown) => resolveConfig(raw, { root: '/project', env: {}, host });

let sshd: Sshd;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

describe('network', () => {
  it("defaults.network resolves as written and is unset when left out", () => {
    expect(resolveRaw({ defaults: { network: 'nat' } }).defaults.network).toBe('nat');
    expect(resolveRaw({ defaults: { network: 'none' } }).defaults.network).toBe('none');
    expect(resolveRaw({}).defaults.network).toBeUndefined();
  });

  it('a bad defaults.network is MACVM_CONFIG_INVALID naming the key, with a did-you-mean', () => {
    let error: unknown;
    try {
      resolveRaw({ defaults: { network: 'nta' } });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'MACVM_CONFIG_INVALID', message: expect.stringContaining('defaults.network must be one of "nat", "none"') });
    expect((error as Error).message).toContain('did you mean "nat"');
  });

  it('a provider with a fixed network (ssh) refuses an explicit network with MACVM_NOT_SUPPORTED', async () => {
    await expect(
      startMacVM({ image: 'machine', provider: 'ssh', providerSettings: sshProviderSettings(sshd) as unknown as Record<string, unknown>, network: 'none', deadline: 20_000 }),
    ).rejects.toMatchObject({ code: 'MACVM_NOT_SUPPORTED', message: expect.stringContaining("network 'none'") });
    // Left unset, the same machine is reached as before.
    const vm = await startMacVM({ image: 'machine', provider: 'ssh', providerSettings: sshProviderSettings(sshd) as unknown as Record<string, unknown>, deadline: 20_000 });
    try {
      expect((await vm.exec('echo reached')).stdout).toBe('reached');
    } finally {
      await vm.dispose();
    }
  });
});
