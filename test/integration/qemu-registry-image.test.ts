/**
 * The trust model of qemu images in registries, end to end on real parts: the built linux-test
 * image pushed to a real registry (Debian's docker-registry on 127.0.0.1), pulled into another
 * MACVM_HOME with its install step, and a clone of the pulled image booted under qemu. The clone
 * lets in the fresh key made at install — through macvm and through OpenSSH's own client — and
 * refuses the client key of the image that was pushed.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMacVM } from '../../src/machine/start.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { pullImage } from '../../src/oci/pull.js';
import { pushImage } from '../../src/oci/push.js';
import { homePaths, macvmHome } from '../../src/vm/home.js';
import { readVmRecord } from '../../src/vm/runtime-dir.js';
import { AUTHORIZED_KEY_PARAMETER, authorizedKeyParameter, publicKeyOfClientKey } from '../../src/vm/qemu/authorized-key.js';
import { buildLinuxTestImage } from '../../src/vm/qemu/image/build-linux-test.js';
import { readQemuManifest } from '../../src/vm/qemu/manifest.js';
import { qemuPushPlan } from '../../src/vm/qemu/registry-push-plan.js';
import { installPulledQemuImage, PULLED_CLIENT_KEY_FILE } from '../../src/vm/qemu/registry-install.js';
import { startRegistry, type TestRegistry } from '../support/registry-server.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const run = promisify(execFile);

let registry: TestRegistry;
let testHome: TestHome;
let scratch: string;
const sourceDir = join(macvmHome(), 'images', 'linux-test');

beforeAll(async () => {
  // The pusher's image, of the current recipe (its guest takes the login key from the command line).
  await buildLinuxTestImage({ imageDir: sourceDir });
  registry = await startRegistry({ auth: 'none' });
  // The puller: another MACVM_HOME.
  testHome = await createTestHome();
  scratch = await mkdtemp(join(tmpdir(), 'macvm-registry-qemu-'));
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  await testHome?.cleanup();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** OpenSSH's client, not macvm's: one command as root with one key, the guest's host key pinned. */
async function opensshRun(port: number, key: string, hostKey: string, command: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const knownHosts = join(scratch, `known_hosts-${port}`);
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey}\n`);
  // ssh expands %-tokens in -i, and the pulled image's dir has a '%' (Tart's cache writes host:port
  // as host%3Aport): hand it a copy of the key from a plain path.
  const plainKey = join(scratch, `key-${port}-${Math.random().toString(36).slice(2)}`);
  await copyFile(key, plainKey);
  await chmod(plainKey, 0o600);
  const args = ['-F', '/dev/null', '-i', plainKey, '-p', String(port), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'PreferredAuthentications=publickey', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'ConnectTimeout=20', 'root@127.0.0.1', command];
  try {
    const { stdout, stderr } = await run('ssh', args, { timeout: 60_000 });
    return { ok: true, stdout, stderr };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { ok: false, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('a qemu image through a registry', () => {
  it('boots, pulled into another home, with a fresh client key; the pushed image\'s key is refused', { timeout: 600_000 }, async () => {
    const reference = `${registry.host}/team/linux-test:trust-model`;
    const pushed = await pushImage(await qemuPushPlan(sourceDir), reference, { env: registry.env });

    const pulled = await pullImage(reference, { cacheRoot: join(testHome.home, 'oci'), env: registry.env, prepareInstall: (dir) => installPulledQemuImage(dir) });
    expect(pulled).toMatchObject({ kind: 'macvm-qemu', digest: pushed.digest, fromCache: false });
    const source = await readQemuManifest(sourceDir, 'linux-test');
    const installed = await readQemuManifest(pulled.dir, 'linux-test');
    // The pinned host key came along; the client key did not, a fresh one was made.
    expect(installed.ssh.hostKey).toBe(source.ssh.hostKey);
    expect(installed.ssh.privateKey).toBe(PULLED_CLIENT_KEY_FILE);
    const originalKey = join(sourceDir, source.ssh.privateKey);
    const freshKey = join(pulled.dir, PULLED_CLIENT_KEY_FILE);
    const freshPublic = await publicKeyOfClientKey(freshKey);
    expect(freshPublic).not.toBe(await publicKeyOfClientKey(originalKey));
    expect((await readFile(join(pulled.dir, source.disk))).equals(await readFile(join(sourceDir, source.disk)))).toBe(true);

    await symlink(pulled.dir, homePaths(testHome.home).image('pulled-linux-test'));
    let vm: MacVM | undefined;
    try {
      vm = await startMacVM({ image: 'pulled-linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 120_000 });
      // macvm logged in with the fresh key; the guest got it on its command line and made it the only one.
      expect((await vm.exec('cat /root/.ssh/authorized_keys')).stdout.trim()).toBe(freshPublic);
      expect((await vm.exec('grep -c . /root/.ssh/authorized_keys')).stdout.trim()).toBe('1');
      const cmdline = (await vm.exec('cat /proc/cmdline')).stdout.trim().split(/\s+/);
      expect(cmdline.filter((arg) => arg.startsWith(`${AUTHORIZED_KEY_PARAMETER}=`))).toEqual([authorizedKeyParameter(freshPublic)]);
      const port = (await readVmRecord(homePaths(testHome.home).vm(vm.id)))!.ssh!.port;
      const withFresh = await opensshRun(port, freshKey, installed.ssh.hostKey, 'echo fresh-key-in');
      expect(withFresh, withFresh.stderr).toMatchObject({ ok: true, stdout: 'fresh-key-in\n' });
      const withOriginal = await opensshRun(port, originalKey, installed.ssh.hostKey, 'echo original-key-in');
      expect(withOriginal.ok).toBe(false);
      expect(withOriginal.stdout).not.toContain('original-key-in');
      expect(withOriginal.stderr).toMatch(/Permission denied \(publickey\)/);
    } finally {
      await vm?.dispose();
    }
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });
});
