/**
 * `orchard.insecureAcceptAnyHostKey: true` in macvm.config.ts takes effect: an image with no
 * pinned host key connects (it used to pass validation and then fail "no host key is pinned"
 * at connect). Without it, the same config is refused. Through the real config loader, a
 * stand-in Orchard controller (a real HTTP server) and a real OpenSSH sshd as the guest.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/runner/config.js';
import { providerConfigView } from '../../src/runner/config.js';
import { providerDefinition } from '../../src/vm/registry.js';
import { startMacVM } from '../../src/machine/start.js';
import { startFakeOrchard, type FakeOrchard } from '../fixtures/orchard/fake-controller.js';
import { startSshd, type Sshd } from '../support/sshd.js';

const IMAGE = 'ghcr.io/cirruslabs/macos-sonoma-base:latest';
const TOKEN = 'tok-insecure-test';
const session = { id: 'insecure-session', pid: process.pid };
const saved = { home: process.env.MACVM_HOME, orchardHome: process.env.ORCHARD_HOME };

let sshd: Sshd;
let fake: FakeOrchard;
let dir: string;

beforeAll(async () => {
  sshd = await startSshd();
  fake = await startFakeOrchard({
    serviceAccounts: [{ name: 'macvm-ci', token: TOKEN, roles: ['compute:read', 'compute:write', 'compute:connect'] }],
    images: [IMAGE],
    guestPorts: { 22: sshd.port },
  });
  dir = await mkdtemp(join(tmpdir(), 'macvm-orchard-insecure-'));
  process.env.MACVM_HOME = join(dir, 'home');
  process.env.ORCHARD_HOME = join(dir, 'orchard-home');
});

afterAll(async () => {
  await fake?.close();
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
  for (const [key, value] of [['MACVM_HOME', saved.home], ['ORCHARD_HOME', saved.orchardHome]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

async function settingsFromConfig(insecure: boolean | undefined): Promise<Record<string, unknown> | undefined> {
  const orchard = { controller: fake.url, serviceAccount: { name: 'macvm-ci', token: TOKEN }, ...(insecure === undefined ? {} : { insecureAcceptAnyHostKey: insecure }) };
  await writeFile(
    join(dir, 'macvm.config.ts'),
    `import { defineConfig } from ${JSON.stringify(resolve('src/runner/config.ts'))};
export default defineConfig(${JSON.stringify({
      provider: 'orchard',
      orchard,
      images: { sonoma: { source: IMAGE, ssh: { user: sshd.user, privateKeyPath: sshd.privateKeyPath } } },
    })});\n`,
  );
  const config = await loadConfig({ cwd: dir });
  return providerDefinition('orchard').settings(providerConfigView(config, 'orchard'))!;
}

describe('orchard.insecureAcceptAnyHostKey from macvm.config.ts', () => {
  it('true: a guest with no pinned host key is reached', async () => {
    const vm = await startMacVM({ image: 'sonoma', provider: 'orchard', providerSettings: await settingsFromConfig(true), deadline: 30_000, session });
    try {
      expect((await vm.exec('echo accepted')).stdout).toBe('accepted');
    } finally {
      await vm.dispose();
    }
    // A real sshd and a real SSH handshake: the 5 s default is too short on a loaded host.
  }, 60_000);

  it('unset: the same image is refused for want of a pinned key, before any VM is created', async () => {
    const before = fake.requests.filter((r) => r.method === 'POST').length;
    await expect(startMacVM({ image: 'sonoma', provider: 'orchard', providerSettings: await settingsFromConfig(undefined), deadline: 30_000, session })).rejects.toMatchObject({
      code: 'MACVM_CONFIG_INVALID',
      message: expect.stringContaining('no pinned SSH host key'),
    });
    expect(fake.requests.filter((r) => r.method === 'POST').length).toBe(before);
  });
});
