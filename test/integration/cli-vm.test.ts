/**
 * The manual VM verbs as a user types them, through the built CLI and a real qemu guest:
 * `vm start` returns while the VM keeps running, `vm ls` shows it, `vm exec` streams output
 * and passes the exit code back, `vm stop` powers it down and keeps the clone, `vm rm`
 * deletes it. `image ls` and `doctor` answer in JSON for scripts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMacvm } from '../support/run-macvm.js';
import { sshProviderSettings, startSshd } from '../support/sshd.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;

beforeAll(async () => {
  testHome = await createTestHome();
});

afterAll(async () => {
  await testHome?.cleanup();
});

const macvm = (args: string[], cwd?: string) => runMacvm(args, { cwd, env: { MACVM_HOME: testHome.home } }).done;

describe('macvm vm', () => {
  it('start → ls → exec → stop → rm on a VM that outlives the command that started it', async () => {
    const started = await macvm(['vm', 'start', 'linux-test', '--cpus', '1', '--memory', '256MiB', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const vm = JSON.parse(started.stdout) as { id: string; provider: string; ssh: { host: string; port: number } };
    expect(vm).toMatchObject({ provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 256, ssh: { host: '127.0.0.1' } });

    // The CLI has exited; the VM has not.
    expect((await testHome.leftovers()).qemuPids).toHaveLength(1);
    const listed = JSON.parse((await macvm(['vm', 'ls', '--json'])).stdout) as Array<{ id: string; state: string; detached: boolean }>;
    expect(listed).toEqual([expect.objectContaining({ id: vm.id, state: 'running', detached: true })]);

    const exec = await macvm(['vm', 'exec', vm.id, '--', 'sh', '-c', 'echo "from the guest: $(uname -s)"; echo oops >&2; exit 3']);
    expect(exec).toMatchObject({ code: 3, stdout: 'from the guest: Linux\n', stderr: 'oops\n' });
    // One word is a shell command line.
    expect((await macvm(['vm', 'exec', vm.id, '--', 'test -d /proc && echo yes'])).stdout).toBe('yes\n');
    // -i pipes our stdin to the guest command, byte for byte; without it the guest reads nothing.
    const input = randomBytes(300_000);
    const piped = await runMacvm(['vm', 'exec', '-i', vm.id, '--', 'sha256sum'], { env: { MACVM_HOME: testHome.home }, input }).done;
    expect(piped.stdout).toBe(`${createHash('sha256').update(input).digest('hex')}  -\n`);
    expect((await runMacvm(['vm', 'exec', vm.id, '--', 'wc -c'], { env: { MACVM_HOME: testHome.home }, input: 'ignored' }).done).stdout.trim()).toBe('0');
    // A guest command that stops reading early: the CLI still exits, with the command's code.
    expect(await runMacvm(['vm', 'exec', '-i', vm.id, '--', 'head -c 5; exit 4'], { env: { MACVM_HOME: testHome.home }, input: 'x'.repeat(5_000_000) }).done).toMatchObject({ code: 4, stdout: 'xxxxx' });

    const stopped = await macvm(['vm', 'stop', vm.id]);
    expect(stopped).toMatchObject({ code: 0, stdout: `${vm.id} stopped\n` });
    expect((await testHome.leftovers()).qemuPids).toEqual([]);
    expect(existsSync(join(testHome.home, 'run', vm.id, 'disk.qcow2'))).toBe(true); // stop keeps the clone
    const afterStop = JSON.parse((await macvm(['vm', 'ls', '--json'])).stdout) as Array<{ id: string; state: string }>;
    expect(afterStop).toEqual([expect.objectContaining({ id: vm.id, state: 'stopped' })]);

    expect(await macvm(['vm', 'rm', vm.id])).toMatchObject({ code: 0, stdout: `${vm.id} removed\n` });
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
    expect((await macvm(['vm', 'ls'])).stdout).toBe('No VMs.\n');
  }, 180_000);

  it('takes the provider and its settings from macvm.config.ts: an ssh machine from the config, exec with its pinned key', async () => {
    const sshd = await startSshd();
    const project = await mkdtemp(join(tmpdir(), 'macvm-cli-project-'));
    try {
      await writeFile(join(project, 'macvm.config.ts'), `export default ${JSON.stringify({ provider: 'ssh', ssh: sshProviderSettings(sshd) })};\n`);
      const started = await macvm(['vm', 'start', 'lab-mac', '--json'], project);
      expect(started.code, started.stderr).toBe(0);
      const vm = JSON.parse(started.stdout) as { id: string };
      expect(vm).toMatchObject({ provider: 'ssh', image: 'lab-mac', ssh: { host: sshd.host, port: sshd.port } });
      expect(await macvm(['vm', 'exec', vm.id, '--', 'echo', 'on the lab machine'], project)).toMatchObject({ code: 0, stdout: 'on the lab machine\n' });
      expect(await macvm(['vm', 'rm', vm.id], project)).toMatchObject({ code: 0 });
      expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
    } finally {
      await sshd.stop();
      await rm(project, { recursive: true, force: true });
    }
  });

  it('names an unknown VM with its error code and says where to look', async () => {
    const result = await macvm(['vm', 'exec', 'macvm-nope', '--', 'true']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/MACVM_VM_NOT_FOUND/);
    expect(result.stderr).toMatch(/No VMs exist; start one with `macvm vm start linux-test`/);
  });

  it('image ls lists qemu images and vz bundles; image ls and doctor answer in JSON', async () => {
    // A vz bundle as `macvm image create` leaves it (Tart's config.json layout), and a broken one.
    const bundle = join(testHome.home, 'images', 'sonoma');
    await mkdir(bundle);
    await copyFile(join('test', 'fixtures', 'tart', 'darwin-config.json'), join(bundle, 'config.json'));
    await writeFile(join(bundle, 'disk.img'), Buffer.alloc(1 << 20, 1));
    await writeFile(join(bundle, 'nvram.bin'), '');
    await mkdir(join(testHome.home, 'images', 'broken'));
    await writeFile(join(testHome.home, 'images', 'broken', 'config.json'), '{"version": 9}');

    const images = JSON.parse((await macvm(['image', 'ls', '--json'])).stdout) as Array<{ name: string; os: string; status: string }>;
    expect(images).toEqual([
      expect.objectContaining({ name: 'broken', provider: 'vz', status: 'corrupt' }),
      expect.objectContaining({ name: 'linux-test', provider: 'qemu', os: 'linux', arch: 'x86_64', status: 'ok' }),
      expect.objectContaining({ name: 'sonoma', provider: 'vz', os: 'macos', arch: 'aarch64', status: 'ok', diskMiB: 1 }),
    ]);
    const table = (await macvm(['image', 'ls'])).stdout;
    expect(table).toMatch(/^NAME\s+PROVIDER\s+OS\s+ARCH/);
    expect(table).toMatch(/^sonoma\s+vz\s+macos\s+aarch64\s+1 MiB/m);
    const doctor = JSON.parse((await macvm(['doctor', '--json'])).stdout) as { defaultProvider: string; checks: Array<{ area: string; ok: boolean; detail: string }> };
    expect(doctor.defaultProvider).toBe('qemu');
    expect(doctor.checks).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ area: 'qemu', ok: true, detail: expect.stringMatching(/^QEMU emulator version/) }),
        // The probe's verdict: kvm only where a guest ran under it, else tcg and why.
        expect.objectContaining({ area: 'accelerator', ok: true, detail: expect.stringMatching(/^(kvm — kvm: a probe guest ran|tcg .* — kvm: )/) }),
        expect.objectContaining({ area: 'vz', ok: false, detail: expect.stringMatching(/Apple Silicon/) }),
      ]),
    );
  });
});
