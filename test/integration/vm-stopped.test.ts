/**
 * A VM whose process ends while a suite uses it — killed from the host, or a guest kernel
 * panic (panic=-1 with -no-reboot ends qemu) — is reported as MACVM_VM_STOPPED, with the
 * exit status and the console tail in the message, for a call in flight and every later one.
 * vm.restart() boots such a VM again from its disk.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startMacVM } from '../../src/machine/start.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { createTestHome, pidsWithArgument, type TestHome } from '../support/vm-home.js';
import { macvmErrorOf as thrown } from '../support/macvm-error.js';

let testHome: TestHome;
const started: MacVM[] = [];

async function boot(): Promise<MacVM> {
  const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 90_000 });
  started.push(vm);
  return vm;
}

/** The one qemu process of this test's home (each test runs one VM). */
function qemuPid(): number {
  const pids = pidsWithArgument(testHome.home);
  expect(pids).toHaveLength(1);
  return pids[0]!;
}

async function waitUntilDead(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
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

describe('a VM that stops while in use', () => {
  it('killed from the host mid-command: that call and every later one fail with MACVM_VM_STOPPED, exit status and console tail in the message', async () => {
    const vm = await boot();
    const pid = qemuPid();
    const running = thrown(vm.exec('sleep 20'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const error = await running;
    expect(error.code).toBe('MACVM_VM_STOPPED');
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(error.message).toContain('SIGKILL');
    expect(error.message).toContain('MACVM-READY');
    expect(error.details).toMatchObject({ exit: { code: null, signal: 'SIGKILL' } });

    const later = await thrown(() => vm.exec('true'));
    expect(later.code).toBe('MACVM_VM_STOPPED');
    expect(later.message).toContain('SIGKILL');
  });

  it('killed from the host between calls: the next exec, upload and forward fail with MACVM_VM_STOPPED', async () => {
    const vm = await boot();
    const pid = qemuPid();
    process.kill(pid, 'SIGKILL');
    await waitUntilDead(pid);
    const error = await thrown(() => vm.exec('true'));
    expect(error.code).toBe('MACVM_VM_STOPPED');
    expect(error.message).toMatch(/killed by SIGKILL[\s\S]*Last console lines:[\s\S]*MACVM-READY/);

    const dir = await mkdtemp(join(tmpdir(), 'macvm-stopped-'));
    try {
      await writeFile(join(dir, 'f'), 'x');
      expect((await thrown(() => vm.upload(join(dir, 'f'), '/tmp/f'))).code).toBe('MACVM_VM_STOPPED');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect((await thrown(() => vm.forwardGuestPort(22))).code).toBe('MACVM_VM_STOPPED');
    expect((await thrown(() => vm.sh`echo ${'x'}`)).code).toBe('MACVM_VM_STOPPED');
  });

  it('a guest kernel panic: MACVM_VM_STOPPED with the panic in the message', async () => {
    const vm = await boot();
    const error = await thrown(() => vm.exec('echo c > /proc/sysrq-trigger; sleep 20'));
    expect(error.code).toBe('MACVM_VM_STOPPED');
    expect(error.message).toMatch(/exited with code \d+/);
    expect(error.message).toContain('Kernel panic');
    expect((await thrown(() => vm.exec('true'))).code).toBe('MACVM_VM_STOPPED');
  });

  it('a guest that powered itself off: vm.restart() boots it again from its disk, in the same clone', async () => {
    const vm = await boot();
    const firstPid = qemuPid();
    const bootId = (await vm.exec('echo on-disk > /root/restart-marker; sync; cat /proc/sys/kernel/random/boot_id')).stdout;
    await thrown(() => vm.exec('poweroff -f'));
    await waitUntilDead(firstPid);
    expect((await thrown(() => vm.exec('true'))).code).toBe('MACVM_VM_STOPPED');

    const times = await vm.restart();
    expect(times.stopMs).toBeLessThanOrEqual(times.bootMs);
    expect(qemuPid()).not.toBe(firstPid);
    expect((await vm.exec('cat /root/restart-marker')).stdout).toBe('on-disk');
    expect((await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout).not.toBe(bootId);
  });

  it('a restart that cannot finish in its deadline: MACVM_DEADLINE_EXCEEDED naming the step, the VM stopped, later calls MACVM_VM_STOPPED', async () => {
    const vm = await boot();
    const error = await thrown(() => vm.restart({ deadline: 1 }));
    expect(error.code).toBe('MACVM_DEADLINE_EXCEEDED');
    expect(error.details.step).toEqual(expect.any(String));
    expect(pidsWithArgument(testHome.home)).toEqual([]);
    const later = await thrown(() => vm.exec('true'));
    expect(later.code).toBe('MACVM_VM_STOPPED');
    expect(later.message).toContain('It did not come back from vm.restart(): The VM was not ready within');
  });
});
