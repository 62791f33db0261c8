/**
 * The foundation on real VMs: the linux-test guest booted under qemu (TCG here), reached
 * over SSH with its host key pinned, and always torn down. After every test: no qemu
 * process, overlay or runtime dir is left under the test's MACVM_HOME.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isMacvmError, MacvmError } from '../../src/errors.js';
import { createQemuProvider, type QemuImage } from '../../src/vm/qemu/provider.js';
import { startMacVM } from '../../src/machine/start.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { forAll, forCommand, forLog, forSsh } from '../../src/machine/wait.js';
import { Deadline } from '../../src/shared/deadline.js';
import { currentSession } from '../../src/vm/session.js';
import { refusesConnections } from '../support/ports.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;
const started: MacVM[] = [];

async function boot(options: Partial<Parameters<typeof startMacVM>[0]> = {}): Promise<MacVM> {
  const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 90_000, ...options });
  started.push(vm);
  return vm;
}

beforeAll(async () => {
  testHome = await createTestHome();
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((vm) => vm.dispose()));
  expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
});

afterAll(async () => {
  await testHome?.cleanup();
});

describe('qemu provider on the linux-test guest', () => {
  it('runs commands with stdout, stderr and exit codes', async () => {
    const vm = await boot();
    const ok = await vm.exec('uname -s; echo oops >&2');
    expect(ok.stdout.trim()).toBe('Linux');
    expect(ok.stderr.trim()).toBe('oops');
    expect(ok.exitCode).toBe(0);
    const failed = await vm.exec('exit 3', { reject: false });
    expect(failed.exitCode).toBe(3);
    await expect(vm.exec('exit 4')).rejects.toMatchObject({ code: 'MACVM_EXEC_FAILED' });
    // Rejected from an SSH event, yet its stack starts at this line (vitest's code frame goes there).
    const line = new Error().stack!.split('\n')[1]!.match(/:(\d+):\d+\)?$/)![1]!;
    const thrown = (await vm.sh`exit 5`.catch((error: unknown) => error)) as Error;
    expect(thrown.stack!.split('\n').find((frame) => /^\s+at /.test(frame))).toMatch(new RegExp(`qemu-lifecycle\\.test\\.ts:${Number(line) + 1}:`));
    // More at once than a connection's 8 slots: queued ones start as others exit, which is when
    // the guest's dropbear (2022.83) closes new channels unread (mkj/dropbear#321); they are retried.
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => vm.sh`sleep 0.1; echo ${String(i)}`));
    expect(many.map((result) => result.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
    const quoted = "it's $(not) run; `neither`";
    expect((await vm.sh`printf %s ${quoted}`).stdout).toBe(quoted);
    expect(vm.facts).toMatchObject({ provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 256, os: 'linux' });
    expect(vm.facts.readyMs).toBeGreaterThan(0);
  });

  it('gives the guest the vCPUs asked for, and says so once when that is more than the host has', async () => {
    const asked = availableParallelism() + 1;
    const written: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      written.push(String(chunk));
      return original(chunk, ...rest);
    }) as typeof process.stderr.write;
    try {
      const vm = await boot({ cpus: asked });
      expect((await vm.exec('grep -c ^processor /proc/cpuinfo')).stdout).toBe(String(asked));
    } finally {
      process.stderr.write = original;
    }
    const warnings = written.filter((line) => line.includes(`cpus: ${asked} is more than this host's ${availableParallelism()} CPU`));
    expect(warnings).toHaveLength(1);
  });

  it('round-trips a 10 MB binary file byte for byte', async () => {
    const vm = await boot();
    const dir = await mkdtemp(join(tmpdir(), 'macvm-bin-'));
    try {
      const data = randomBytes(10 * 1024 * 1024);
      const sha = createHash('sha256').update(data).digest('hex');
      await writeFile(join(dir, 'in.bin'), data);
      await vm.upload(join(dir, 'in.bin'), '/tmp/in.bin');
      expect((await vm.exec('sha256sum /tmp/in.bin')).stdout.split(' ')[0]).toBe(sha);
      await vm.download('/tmp/in.bin', join(dir, 'out.bin'));
      expect(createHash('sha256').update(await readFile(join(dir, 'out.bin'))).digest('hex')).toBe(sha);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('forwards a guest port to the host and a host port into the guest', async () => {
    const vm = await boot();
    // guest → host: busybox httpd in the guest, reached from 127.0.0.1 on the host
    await vm.exec('mkdir -p /tmp/www && echo from-the-guest > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www');
    const forward = await vm.forwardGuestPort(8080);
    const body = await (await fetch(`http://127.0.0.1:${forward.port}/index.html`)).text();
    expect(body.trim()).toBe('from-the-guest');

    // host → guest: a host server on loopback, fetched from inside the guest
    const server = createServer((_req, res) => res.end('from-the-host'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const hostPort = (server.address() as { port: number }).port;
      const guestPort = await vm.exposeHostPort(hostPort);
      expect((await vm.exec(`wget -qO- http://127.0.0.1:${guestPort}/`)).stdout).toBe('from-the-host');
    } finally {
      server.close();
    }
    await forward.close();
    expect(await refusesConnections(forward.port)).toBe(true);
  });

  it('keeps two clones of one image apart and never writes the base', async () => {
    const provider = createQemuProvider();
    const image = (await provider.prepare('linux-test')) as QemuImage;
    const baseBefore = createHash('sha256').update(await readFile(image.manifest.disk)).digest('hex');
    const [a, b] = await Promise.all([boot(), boot()]);
    await a.exec('echo only-in-a > /root/mark && sync');
    expect((await a.exec('cat /root/mark')).stdout.trim()).toBe('only-in-a');
    expect((await b.exec('test -e /root/mark', { reject: false })).exitCode).toBe(1);
    expect(a.id).not.toBe(b.id);
    await Promise.all([a.dispose(), b.dispose()]);
    const baseAfter = createHash('sha256').update(await readFile(image.manifest.disk)).digest('hex');
    expect(baseAfter).toBe(baseBefore);
  });

  it('powers the guest down through ACPI (not a kill) and dispose is idempotent', async () => {
    const provider = createQemuProvider();
    const image = await provider.prepare('linux-test');
    const deadline = new Deadline(90_000);
    const clone = await provider.clone(image, { session: currentSession(), deadline });
    try {
      const running = await clone.boot({ cpus: 1, memoryMiB: 256, display: false, deadline });
      await forLog(/MACVM-READY/).wait({ vm: running, session: undefined as never, deadline });
      await running.stop({ gracefulMs: 20_000 });
      // busybox acpid got the power button and the kernel powered off by itself.
      expect(await readFile(running.consoleLogPath!, 'utf8')).toMatch(/reboot: Power down/);
      expect(await running.exited).toEqual({ code: 0, signal: null });
    } finally {
      deadline.finish();
      await clone.destroy();
      await clone.destroy();
    }
    const vm = await boot();
    await vm.dispose();
    await vm.dispose();
    await expect(vm.exec('true')).rejects.toMatchObject({ code: 'MACVM_SESSION_CLOSED' });
  });

  it('waits with composed strategies: the console marker, then a command', async () => {
    const vm = await boot({ wait: forAll([forLog(/MACVM-READY/), forSsh(), forCommand('test -d /proc/1')]) });
    expect(await vm.consoleTail(50)).toMatch(/MACVM-READY/);
  });

  it('fails with the hung step and the console tail when the deadline passes, leaving nothing', async () => {
    const error = await startMacVM({
      image: 'linux-test',
      provider: 'qemu',
      cpus: 1,
      memory: '256MiB',
      deadline: 30_000,
      wait: forCommand('test -e /never-there', { intervalMs: 500 }),
    }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_DEADLINE_EXCEEDED')).toBe(true);
    const { details, message } = error as MacvmError;
    expect(details.step).toBe('wait: forCommand("test -e /never-there")');
    expect(details.consoleTail).toMatch(/MACVM-READY/);
    expect(message).toMatch(/step "wait: forCommand/);
  });

  it('refuses a guest whose host key differs from the pinned one', async () => {
    const real = createQemuProvider();
    const wrongKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
    const provider = { ...real, prepare: async (ref: string) => ({ ...(await real.prepare(ref)), ssh: { ...(await real.prepare(ref)).ssh, hostKey: wrongKey } }) };
    const error = await startMacVM({ image: 'linux-test', provider, cpus: 1, memory: '256MiB', deadline: 90_000 }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_HOST_KEY_MISMATCH')).toBe(true);
  });
});
