/**
 * The linux-test guest's boot, measured with a plain qemu command line (no provider):
 * spawn → ready marker, spawn → first SSH command done, the guest's own uptime at the
 * marker, qemu's CPU seconds until the marker (less sensitive to a busy host than wall
 * time), and system_powerdown → qemu exit. Headless vmlinux (PVH) vs. the bzImage, side
 * by side, alternating. LINUX_TEST_BOOTS sets the boots per variant (default 3).
 * Devices as the qemu provider wires them (virtio-rng included: without it the marker
 * comes earlier but the first SSH key exchange waits for the kernel's entropy).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { freeLoopbackPort } from '../src/util/free-port.js';
import { homePaths } from '../src/vm/home.js';
import { intactImage } from '../src/vm/qemu/image/build-linux-test.js';
import type { QemuImageManifest } from '../src/vm/qemu/manifest.js';
import { QmpClient } from '../src/vm/qemu/qmp.js';

interface Sample {
  markerS: number;
  sshDoneS: number;
  guestUptimeS: number;
  qemuCpuS: number;
  powerdownS: number;
}

export async function run(): Promise<void> {
  const imageDir = homePaths().image('linux-test');
  const manifest = await intactImage(imageDir);
  if (!manifest) {
    console.log(`linux-test is not built in ${imageDir}; run \`macvm image build linux-test\` first.`);
    return;
  }
  const boots = Number(process.env.LINUX_TEST_BOOTS ?? 3);
  const variants = [
    ...(manifest.headlessKernel ? [{ name: `${manifest.machine} + ${manifest.headlessKernel} (PVH)`, kernel: manifest.headlessKernel }] : []),
    { name: `${manifest.machine} + ${manifest.kernel} (bzImage)`, kernel: manifest.kernel! },
  ];
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  const work = await mkdtemp(join(tmpdir(), 'macvm-bench-linux-test-'));
  try {
    for (let i = 0; i < boots; i++) {
      for (const variant of variants) samples.get(variant.name)!.push(await bootOnce(imageDir, manifest, variant.kernel, join(work, `${i}-${variant.kernel}`)));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log(`TCG, -smp 1, -m 256, ${boots} boot(s) each; median [min–max] seconds`);
  for (const [name, list] of samples) {
    const f = (key: keyof Sample) => figure(list.map((s) => s[key]));
    console.log(`${name}`);
    console.log(`  spawn → ready marker      ${f('markerS')}`);
    console.log(`  spawn → SSH command done  ${f('sshDoneS')}`);
    console.log(`  guest uptime at marker    ${f('guestUptimeS')}`);
    console.log(`  qemu CPU until marker     ${f('qemuCpuS')}`);
    console.log(`  system_powerdown → exit   ${f('powerdownS')}`);
  }
}

function figure(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return `${median.toFixed(2)} [${sorted[0]!.toFixed(2)}–${sorted.at(-1)!.toFixed(2)}]`;
}

async function bootOnce(imageDir: string, manifest: QemuImageManifest, kernel: string, prefix: string): Promise<Sample> {
  const overlay = `${prefix}.qcow2`;
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(imageDir, manifest.disk), '-F', 'qcow2', overlay]);
  const port = await freeLoopbackPort();
  const consoleLog = `${prefix}.console`;
  const known = `${prefix}.known_hosts`;
  await writeFile(known, `[127.0.0.1]:${port} ${manifest.ssh.hostKey}\n`);
  const started = performance.now();
  const qemu = execa('qemu-system-x86_64', [
    '-accel', 'tcg', '-M', manifest.machine, '-cpu', 'qemu64', '-m', '256', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none',
    '-serial', `file:${consoleLog}`, '-kernel', join(imageDir, kernel), '-initrd', join(imageDir, manifest.initrd!), '-append', `${manifest.append} console=ttyS0`,
    '-drive', `file=${overlay},if=none,id=d0,format=qcow2`, '-device', 'virtio-blk-pci,drive=d0',
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, '-device', 'virtio-net-pci,netdev=n0', '-device', 'virtio-rng-pci',
    '-qmp', `unix:${prefix}.qmp,server=on,wait=off`,
  ], { reject: false, stdin: 'ignore' });
  try {
    let line: string | undefined;
    while (!line) {
      if (qemu.exitCode !== null || performance.now() - started > 180_000) throw new Error(`linux-test did not boot: ${(await readFile(consoleLog, 'utf8').catch(() => '')).slice(-1000)}`);
      line = (await readFile(consoleLog, 'utf8').catch(() => '')).split('\n').find((l) => l.includes(manifest.readyMarker!));
      if (!line) await sleep(10);
    }
    const markerS = (performance.now() - started) / 1000;
    const procStat = await readFile(`/proc/${qemu.pid}/stat`, 'utf8');
    const stat = procStat.slice(procStat.lastIndexOf(')') + 2).split(' ');
    const qemuCpuS = (Number(stat[11]) + Number(stat[12])) / 100; // utime + stime, in clock ticks (USER_HZ 100)
    await execa('ssh', ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${known}`, '-o', 'LogLevel=ERROR',
      '-i', join(imageDir, manifest.ssh.privateKey), '-p', String(port), 'root@127.0.0.1', 'true'], { stdin: 'ignore' });
    const sshDoneS = (performance.now() - started) / 1000;
    const qmp = await QmpClient.connect(`${prefix}.qmp`);
    const downAt = performance.now();
    await qmp.execute('system_powerdown').finally(() => qmp.close());
    await qemu;
    return { markerS, sshDoneS, guestUptimeS: Number(/uptime=([\d.]+)/.exec(line)?.[1]), qemuCpuS, powerdownS: (performance.now() - downAt) / 1000 };
  } finally {
    if (qemu.exitCode === null) qemu.kill('SIGKILL');
    await qemu;
  }
}
