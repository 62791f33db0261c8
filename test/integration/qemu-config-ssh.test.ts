/**
 * `images.<name>.ssh` in macvm.config.ts takes effect for qemu images: a pinned host key there
 * is the one the guest must present (a wrong one fails with MACVM_HOST_KEY_MISMATCH, where it
 * used to be ignored silently), and a malformed one is refused naming the key. Through the real
 * config loader and a real linux-test VM.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, providerConfigView } from '../../src/runner/config.js';
import { providerDefinition } from '../../src/vm/registry.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { startMacVM } from '../../src/machine/start.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;
let dir: string;
const started: MacVM[] = [];

/** Loads a macvm.config.ts pinning `hostKey` for linux-test, and starts a VM with its qemu settings. */
async function bootWithConfiguredKey(hostKey: string): Promise<MacVM> {
  await writeFile(
    join(dir, 'macvm.config.ts'),
    `import { defineConfig } from ${JSON.stringify(resolve('src/runner/config.ts'))};
export default defineConfig({ provider: 'qemu', images: { 'linux-test': { ssh: { user: 'root', hostKey: ${JSON.stringify(hostKey)} } } } });\n`,
  );
  const config = await loadConfig({ cwd: dir, env: { ...process.env, MACVM_HOME: testHome.home } });
  const settings = providerDefinition('qemu').settings(providerConfigView(config, 'qemu'));
  const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', providerSettings: settings, cpus: 1, memory: '256MiB', deadline: 90_000 });
  started.push(vm);
  return vm;
}

/** An ed25519 public key in OpenSSH form that no guest has. */
function otherEd25519Key(): string {
  const der = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
  const raw = der.subarray(der.length - 32);
  const type = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([Buffer.from([0, 0, 0, type.length]), type, Buffer.from([0, 0, 0, 32]), raw]);
  return `ssh-ed25519 ${blob.toString('base64')}`;
}

beforeAll(async () => {
  testHome = await createTestHome();
  dir = await mkdtemp(join(tmpdir(), 'macvm-config-ssh-'));
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((vm) => vm.dispose()));
  expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await testHome?.cleanup();
});

describe('images.<name>.ssh for a qemu image', () => {
  it('a wrong pinned host key fails with MACVM_HOST_KEY_MISMATCH, and nothing is left', async () => {
    await expect(bootWithConfiguredKey(otherEd25519Key())).rejects.toMatchObject({ code: 'MACVM_HOST_KEY_MISMATCH' });
  });

  it("the image's real host key, pinned in the config, connects", async () => {
    const manifest = JSON.parse(await readFile(join(testHome.home, 'images', 'linux-test', 'image.json'), 'utf8')) as { ssh: { hostKey: string } };
    const vm = await bootWithConfiguredKey(`${manifest.ssh.hostKey} root@linux-test`);
    expect((await vm.exec('id -un')).stdout.trim()).toBe('root');
  });

  it('a malformed host key is MACVM_CONFIG_INVALID naming images.linux-test.ssh.hostKey, before anything boots', async () => {
    await expect(bootWithConfiguredKey('ssh-ed25519 not-base64!')).rejects.toMatchObject({
      code: 'MACVM_CONFIG_INVALID',
      message: expect.stringContaining('images.linux-test.ssh.hostKey'),
    });
  });
});
