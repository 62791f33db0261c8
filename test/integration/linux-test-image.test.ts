import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseOpenSshPublicKey } from '../../src/guest/host-key.js';
import { freeLoopbackPort } from '../../src/util/free-port.js';
import { homePaths } from '../../src/vm/home.js';
import type { QemuImageManifest } from '../../src/vm/qemu/manifest.js';
import { QmpClient } from '../../src/vm/qemu/qmp.js';
import { buildLinuxTestImage, intactImage, type BuildProgress } from '../../src/vm/qemu/image/build-linux-test.js';

// The real linux-test image, booted by a plain qemu command line (not the provider):
// this checks the image itself. It uses the image in $MACVM_HOME when one is built and
// otherwise builds one into a temp dir (downloads included) that it removes afterwards.
let imageDir: string;
let manifest: QemuImageManifest;
let tempHome: string | undefined;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'macvm-linux-test-boot-'));
  const installed = homePaths().image('linux-test');
  const existing = await intactImage(installed);
  if (existing) {
    imageDir = installed;
    manifest = existing;
  } else {
    tempHome = await mkdtemp(join(tmpdir(), 'macvm-linux-test-home-'));
    imageDir = join(tempHome, 'images', 'linux-test');
    manifest = await buildLinuxTestImage({ imageDir });
  }
}, 600_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
  if (tempHome) await rm(tempHome, { recursive: true, force: true });
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('linux-test image', () => {
  it('has a complete manifest, a read-only base disk, a private client key and a pinned host key', async () => {
    expect(manifest).toMatchObject({ schema: 1, name: 'linux-test', os: 'linux', arch: 'x86_64', ssh: { user: 'root', port: 22 } });
    expect(manifest.append).toMatch(/root=\/dev\/vda/);
    expect(manifest.append).not.toMatch(/console=/);
    expect(manifest.readyMarker).toBeTruthy();
    expect(parseOpenSshPublicKey(manifest.ssh.hostKey).type).toBe('ssh-ed25519');
    expect(manifest.facts.kernel).toMatch(/^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
    expect(manifest.facts.busybox).toMatch(/1\.\d+/);
    expect(manifest.facts.dropbear).toMatch(/^20\d\d\./);
    // Debian's kernel is LZ4: the build unpacks it so QEMU boots it directly (PVH).
    expect(manifest.facts.kernelFormat).toMatch(/^vmlinux/);
    expect((await stat(join(imageDir, manifest.disk))).mode & 0o777).toBe(0o444);
    expect((await stat(join(imageDir, manifest.ssh.privateKey))).mode & 0o777).toBe(0o600);
  });

  it('a second build with the image intact does nothing and returns the same manifest', async () => {
    const steps: BuildProgress[] = [];
    const again = await buildLinuxTestImage({ imageDir, onProgress: (p) => steps.push(p) });
    expect(again.createdAt).toBe(manifest.createdAt);
    expect(again.ssh.hostKey).toBe(manifest.ssh.hostKey);
    expect(steps.map((s) => s.step)).toEqual(['cached']);
  });

  it('boots under TCG on an overlay: SSH with the pinned key, an SFTP round trip, a refused wrong key, ACPI power-down', async () => {
    const disk = join(imageDir, manifest.disk);
    const baseHash = sha256(await readFile(disk));
    const overlay = join(work, 'overlay.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', disk, '-F', 'qcow2', overlay]);
    const port = await freeLoopbackPort();
    const consoleLog = join(work, 'console.log');
    const qmpSocket = join(work, 'qmp.sock');
    const knownHosts = join(work, 'known_hosts');
    await writeFile(knownHosts, `[127.0.0.1]:${port} ${manifest.ssh.hostKey}\n`);

    const started = performance.now();
    const qemu = execa('qemu-system-x86_64', [
      '-accel', 'tcg', '-M', manifest.machine, '-cpu', 'qemu64', '-m', '256', '-smp', '1',
      '-nodefaults', '-no-user-config', '-display', 'none', '-serial', `file:${consoleLog}`,
      '-kernel', join(imageDir, manifest.kernel!), '-initrd', join(imageDir, manifest.initrd!),
      '-append', `${manifest.append} console=ttyS0`,
      '-drive', `file=${overlay},if=none,id=d0,format=qcow2`, '-device', 'virtio-blk-pci,drive=d0',
      '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', 'virtio-net-pci,netdev=n0',
      '-qmp', `unix:${qmpSocket},server=on,wait=off`,
    ], { reject: false, stdin: 'ignore' });
    try {
      const marker = await waitForConsole(consoleLog, manifest.readyMarker!, qemu, 120_000);
      const markerAt = performance.now();
      expect(marker).toMatch(/uptime=\d+\.\d+/);

      const sshArgs = (known: string) => [
        '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR',
        '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${known}`, '-i', join(imageDir, manifest.ssh.privateKey),
      ];
      const uname = await execa('ssh', [...sshArgs(knownHosts), '-p', String(port), 'root@127.0.0.1', 'uname -a'], { reject: false, stdin: 'ignore' });
      const sshDoneAt = performance.now();
      expect(uname.stderr).toBe('');
      expect(uname.exitCode).toBe(0);
      expect(uname.stdout).toContain(`Linux macvm-linux-test ${manifest.facts.kernel}`);
      console.info(`linux-test: spawn → ready marker ${((markerAt - started) / 1000).toFixed(2)} s, spawn → SSH command done ${((sshDoneAt - started) / 1000).toFixed(2)} s (${marker.trim()})`);

      const blob = randomBytes(1024 * 1024);
      await writeFile(join(work, 'blob'), blob);
      await writeFile(join(work, 'sftp.batch'), `put ${join(work, 'blob')} /tmp/blob\nget /tmp/blob ${join(work, 'blob.back')}\n`);
      const sftp = await execa('sftp', [...sshArgs(knownHosts), '-P', String(port), '-b', join(work, 'sftp.batch'), 'root@127.0.0.1'], { reject: false, stdin: 'ignore' });
      expect(sftp.stderr).toBe('');
      expect(sftp.exitCode).toBe(0);
      expect(sha256(await readFile(join(work, 'blob.back')))).toBe(sha256(blob));
      const guestHash = await execa('ssh', [...sshArgs(knownHosts), '-p', String(port), 'root@127.0.0.1', 'sha256sum /tmp/blob'], { stdin: 'ignore' });
      expect(guestHash.stdout.split(/\s+/)[0]).toBe(sha256(blob));

      // The pin means something: the same guest under a different pinned key is refused.
      const otherKey = join(work, 'other_key');
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
      const wrongKnown = join(work, 'known_hosts.wrong');
      await writeFile(wrongKnown, `[127.0.0.1]:${port} ${(await readFile(`${otherKey}.pub`, 'utf8')).trim()}\n`);
      const refused = await execa('ssh', [...sshArgs(wrongKnown), '-p', String(port), 'root@127.0.0.1', 'true'], { reject: false, stdin: 'ignore' });
      expect(refused.exitCode).toBe(255);
      expect(refused.stderr).toMatch(/host key/i);

      const qmp = await QmpClient.connect(qmpSocket);
      try {
        await qmp.execute('system_powerdown');
      } finally {
        qmp.close();
      }
      const exit = await Promise.race([qemu, sleep(60_000).then(() => undefined)]);
      expect(exit, 'qemu did not exit within 60 s of system_powerdown').toBeDefined();
      expect(exit!.exitCode).toBe(0);
      expect(await readFile(consoleLog, 'utf8')).not.toMatch(/MACVM-INITRD-FAILED|Kernel panic/);
      expect(sha256(await readFile(disk))).toBe(baseHash);
    } finally {
      if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
      await qemu;
    }
  });
});

/** Polls the serial console file until a line contains `marker`; fails early if qemu exits. */
async function waitForConsole(path: string, marker: string, qemu: ResultPromise, timeoutMs: number): Promise<string> {
  let exited = false;
  void qemu.then(() => (exited = true));
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    const text = await readFile(path, 'utf8').catch(() => '');
    const line = text.split('\n').find((l) => l.includes(marker));
    if (line) return line;
    if (/MACVM-INITRD-FAILED.*/.test(text)) throw new Error(`the initrd failed:\n${text.slice(-2000)}`);
    if (exited) throw new Error(`qemu exited before the ready marker:\n${text.slice(-2000)}`);
    await sleep(25);
  }
  throw new Error(`no "${marker}" on the serial console within ${timeoutMs} ms:\n${(await readFile(path, 'utf8').catch(() => '')).slice(-2000)}`);
}
