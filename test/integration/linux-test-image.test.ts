import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseOpenSshPublicKey } from '../../src/guest/host-key.js';
import { freeLoopbackPort } from '../../src/util/free-port.js';
import { homePaths } from '../../src/vm/home.js';
import type { QemuImageManifest } from '../../src/vm/qemu/manifest.js';
import { QmpClient } from '../../src/vm/qemu/qmp.js';
import { buildLinuxTestImage, intactImage, type BuildProgress } from '../../src/vm/qemu/image/build-linux-test.js';
import { defaultDownloadsDir } from '../../src/vm/qemu/image/cached-build.js';

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
    // Debian's kernel is LZ4: the build unpacks it so headless boots skip decompression (PVH).
    expect(manifest.headlessKernel).toBe('vmlinux');
    expect((await stat(join(imageDir, manifest.disk))).mode & 0o777).toBe(0o444);
    expect((await stat(join(imageDir, manifest.ssh.privateKey))).mode & 0o777).toBe(0o600);
  });

  it('records every .deb that went in: name, version, and the sha256 of the downloaded file', async (context) => {
    // Images built before inputs were recorded stay valid (same recipe): nothing to check there.
    if (!manifest.inputs) context.skip(`${imageDir} predates recorded inputs; \`macvm image build linux-test --force\` records them`);
    const inputs = manifest.inputs!;
    const names = inputs.map((i) => i.name);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['busybox-static', 'dropbear-bin', 'openssh-sftp-server', 'libc6', manifest.facts.kernelPackage!.split(' ')[0]]));
    expect(inputs.find((i) => i.name === 'busybox-static')!.version).toBe(manifest.facts.busybox);
    const downloads = defaultDownloadsDir(imageDir);
    for (const input of inputs) {
      expect(input.sha256).toMatch(/^[0-9a-f]{64}$/);
      const file = join(downloads, `${input.name}_${input.version.replace(/:/g, '%3a')}_${input.architecture}.deb`);
      const data = await readFile(file).catch(() => undefined);
      // The downloads cache may have been cleared since; what is there must match.
      if (data) expect(sha256(data), file).toBe(input.sha256);
    }
  });

  it('a second build with the image intact does nothing and returns the same manifest', async () => {
    const steps: BuildProgress[] = [];
    const again = await buildLinuxTestImage({ imageDir, onProgress: (p) => steps.push(p) });
    expect(again.createdAt).toBe(manifest.createdAt);
    expect(again.ssh.hostKey).toBe(manifest.ssh.hostKey);
    expect(steps.map((s) => s.step)).toEqual(['cached']);
  });

  it('boots headless under TCG on an overlay: SSH with the pinned key, an SFTP round trip, a refused wrong key, ACPI power-down', async () => {
    const disk = join(imageDir, manifest.disk);
    const baseHash = sha256(await readFile(disk));
    const guest = await boot('headless', { kernel: manifest.headlessKernel ?? manifest.kernel!, machine: manifest.machine, display: false });
    try {
      const uname = await guest.ssh('uname -a');
      const sshDoneAt = performance.now();
      expect(uname.stderr).toBe('');
      expect(uname.exitCode).toBe(0);
      expect(uname.stdout).toContain(`Linux macvm-linux-test ${manifest.facts.kernel}`);
      console.info(
        `linux-test (${manifest.machine}, ${manifest.headlessKernel ?? 'bzImage'}): spawn → ready marker ${((guest.markerAt - guest.started) / 1000).toFixed(2)} s, ` +
          `spawn → SSH command done ${((sshDoneAt - guest.started) / 1000).toFixed(2)} s (${guest.marker.trim()})`,
      );

      const blob = randomBytes(1024 * 1024);
      await writeFile(join(work, 'blob'), blob);
      await writeFile(join(work, 'sftp.batch'), `put ${join(work, 'blob')} /tmp/blob\nget /tmp/blob ${join(work, 'blob.back')}\n`);
      const sftp = await execa('sftp', [...sshOptions(guest.knownHosts), '-P', String(guest.port), '-b', join(work, 'sftp.batch'), 'root@127.0.0.1'], { reject: false, stdin: 'ignore' });
      expect(sftp.stderr).toBe('');
      expect(sftp.exitCode).toBe(0);
      expect(sha256(await readFile(join(work, 'blob.back')))).toBe(sha256(blob));
      expect((await guest.ssh('sha256sum /tmp/blob')).stdout.split(/\s+/)[0]).toBe(sha256(blob));

      // The pin means something: the same guest under a different pinned key is refused.
      const otherKey = join(work, 'other_key');
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
      const wrongKnown = join(work, 'known_hosts.wrong');
      await writeFile(wrongKnown, `[127.0.0.1]:${guest.port} ${(await readFile(`${otherKey}.pub`, 'utf8')).trim()}\n`);
      const refused = await execa('ssh', [...sshOptions(wrongKnown), '-p', String(guest.port), 'root@127.0.0.1', 'true'], { reject: false, stdin: 'ignore' });
      expect(refused.exitCode).toBe(255);
      expect(refused.stderr).toMatch(/host key/i);

      const exit = await guest.powerdown();
      expect(exit?.exitCode, 'qemu did not exit within 60 s of system_powerdown').toBe(0);
      expect(await readFile(guest.consoleLog, 'utf8')).not.toMatch(/MACVM-INITRD-FAILED|Kernel panic/);
      expect(sha256(await readFile(disk))).toBe(baseHash);
    } finally {
      await guest.kill();
    }
  });

  it('with a display (bzImage, -vga std) the VGA console shows exactly what is written to tty1, nothing else', async () => {
    const guest = await boot('display', { kernel: manifest.kernel!, machine: manifest.displayMachine, display: true });
    try {
      const write = await guest.ssh(`printf '\\033[H\\033[2JMACVM TTY1 CHECK' > /dev/tty1`);
      expect(write.exitCode).toBe(0);
      const qmp = await QmpClient.connect(guest.qmpSocket);
      const file = join(work, 'screen.png');
      try {
        await qmp.execute('screendump', { filename: file, format: 'png' });
      } finally {
        qmp.close();
      }
      const png = PNG.sync.read(await readFile(file));
      expect([png.width, png.height]).toEqual([720, 400]); // VGA text mode, 80×25 cells of 9×16
      const lit = (x: number, y: number) => {
        const i = (y * png.width + x) * 4;
        return png.data[i]! + png.data[i + 1]! + png.data[i + 2]! > 96;
      };
      let firstRow = 0;
      let elsewhere = 0;
      for (let y = 0; y < png.height; y++) {
        for (let x = 0; x < png.width; x++) {
          if (!lit(x, y)) continue;
          if (y < 16 && x < 16 * 9) firstRow++;
          else elsewhere++;
        }
      }
      expect(firstRow, 'the written text is on screen').toBeGreaterThan(50);
      expect(elsewhere, 'nothing else (firmware text, kernel messages, a cursor) is on screen').toBe(0);
      expect((await guest.powerdown())?.exitCode).toBe(0);
    } finally {
      await guest.kill();
    }
  });
});

function sshOptions(knownHosts: string): string[] {
  return [
    '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR',
    '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-i', join(imageDir, manifest.ssh.privateKey),
  ];
}

/** Boots the image on a fresh overlay with a plain qemu command line and waits for the ready marker. */
async function boot(name: string, options: { kernel: string; machine: string; display: boolean }) {
  const overlay = join(work, `${name}.qcow2`);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(imageDir, manifest.disk), '-F', 'qcow2', overlay]);
  const port = await freeLoopbackPort();
  const consoleLog = join(work, `${name}.console.log`);
  const qmpSocket = join(work, `${name}.qmp.sock`);
  const knownHosts = join(work, `${name}.known_hosts`);
  await writeFile(knownHosts, `[127.0.0.1]:${port} ${manifest.ssh.hostKey}\n`);
  const bus = options.machine === 'microvm' ? 'device' : 'pci';
  const started = performance.now();
  const qemu = execa('qemu-system-x86_64', [
    '-accel', 'tcg', '-M', options.machine, '-cpu', 'qemu64', '-m', '256', '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', ...(options.display ? ['-vga', 'std'] : []),
    '-serial', `file:${consoleLog}`,
    '-kernel', join(imageDir, options.kernel), '-initrd', join(imageDir, manifest.initrd!),
    '-append', `${manifest.append} console=ttyS0`,
    '-drive', `file=${overlay},if=none,id=d0,format=qcow2`, '-device', `virtio-blk-${bus},drive=d0`,
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', `virtio-net-${bus},netdev=n0`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
  ], { reject: false, stdin: 'ignore' });
  const kill = async () => {
    if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
    await qemu;
  };
  let marker: string;
  try {
    marker = await waitForConsole(consoleLog, manifest.readyMarker!, qemu, 150_000);
  } catch (error) {
    await kill();
    throw error;
  }
  return {
    qemu, port, consoleLog, qmpSocket, knownHosts, started, marker, markerAt: performance.now(), kill,
    ssh: (command: string) => execa('ssh', [...sshOptions(knownHosts), '-p', String(port), 'root@127.0.0.1', command], { reject: false, stdin: 'ignore' }),
    /** QMP system_powerdown, then the qemu process's exit (undefined if it is still running after 60 s). */
    async powerdown() {
      const qmp = await QmpClient.connect(qmpSocket);
      try {
        await qmp.execute('system_powerdown');
      } finally {
        qmp.close();
      }
      return Promise.race([qemu, sleep(60_000).then(() => undefined)]);
    },
  };
}

/** Polls the serial console file until a line contains `marker`; fails early if qemu exits. */
async function waitForConsole(path: string, marker: string, qemu: ResultPromise, timeoutMs: number): Promise<string> {
  let exited = false;
  void qemu.then(() => (exited = true));
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    const text = await readFile(path, 'utf8').catch(() => '');
    const line = text.split('\n').find((l) => l.includes(marker));
    if (line) return line;
    if (text.includes('MACVM-INITRD-FAILED')) throw new Error(`the initrd failed:\n${text.slice(-2000)}`);
    if (exited) throw new Error(`qemu exited before the ready marker:\n${text.slice(-2000)}`);
    await sleep(25);
  }
  throw new Error(`no "${marker}" on the serial console within ${timeoutMs} ms:\n${(await readFile(path, 'utf8').catch(() => '')).slice(-2000)}`);
}
