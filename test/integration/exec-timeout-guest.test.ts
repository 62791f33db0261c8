/**
 * Exec timeouts on a real linux-test guest (dropbear + busybox): a timed-out command's
 * whole process tree is gone afterwards, and the session survives any number of them.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMacVM } from '../../src/machine/start.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';
import { macvmErrorOf as thrown } from '../support/macvm-error.js';

let testHome: TestHome;
let vm: MacVM;

beforeAll(async () => {
  testHome = await createTestHome();
  vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 90_000 });
});

afterAll(async () => {
  await vm?.dispose();
  expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  await testHome?.cleanup();
});

/** Guest processes whose command line contains `text` (the grep itself excluded). */
async function guestProcesses(text: string): Promise<string[]> {
  const { stdout } = await vm.exec('ps -A -o pid,ppid,args');
  return stdout.split('\n').filter((line) => line.includes(text) && !line.includes('ps -A'));
}

describe('exec timeouts in a linux-test guest', () => {
  it('kill the whole command tree, not just the login shell', async () => {
    const started = Date.now();
    const error = await thrown(() => vm.exec('sleep 3007; echo done', { timeoutMs: 1_000 }));
    expect(error.code).toBe('MACVM_EXEC_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await guestProcesses('sleep 3007')).toEqual([]);
  });

  it('execa\'s `timeout` is not ours: named with a did-you-mean before anything runs, instead of running with no limit', async () => {
    const error = await thrown(() => vm.exec('sleep 3006', { timeout: 1_000 } as never));
    expect(error.code).toBe('MACVM_BAD_ARGUMENT');
    expect(error.message).toContain('vm.exec() options: timeout is not a known key (did you mean "timeoutMs"?)');
    expect(await guestProcesses('sleep 3006')).toEqual([]);
    const screenshot = await thrown(() => vm.screenshot({ stable: true, timeout: 10 } as never));
    expect(screenshot.message).toContain('vm.screenshot() options: timeout is not a known key (did you mean "timeoutMs"?)');
    expect((await thrown(() => vm.exposeHostPort(3000, { guestPort: -1 }))).message).toContain('guestPort must be');
    expect((await thrown(() => vm.browser({ browserName: 'firefox' } as never))).message).toContain('browserName must be one of');
    expect((await thrown(() => vm.simulator({ deviceType: 'iPhone 15', bootTimeout: 5 } as never))).message).toContain('did you mean "bootTimeoutMs"?');
    // Checked before the VM is touched: the exec after it runs in the same boot.
    const bootId = (await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout;
    expect((await thrown(() => vm.restart({ deadlineMs: 5_000 } as never))).message).toContain('vm.restart() options: deadlineMs is not a known key (did you mean "deadline"?)');
    expect((await vm.exec('cat /proc/sys/kernel/random/boot_id')).stdout).toBe(bootId);
  });

  it('kill grandchildren, background jobs and a subshell too', async () => {
    await thrown(() => vm.exec('(sleep 3008 & sleep 3009; echo x) ; sh -c "sleep 3010"', { timeoutMs: 1_000 }));
    expect(await guestProcesses('sleep 30')).toEqual([]);
  });

  it('leave the session usable after ten timeouts in a row: exec, upload and both forwards still work', async () => {
    for (let i = 0; i < 10; i++) {
      const error = await thrown(() => vm.exec(`sleep 3011; echo ${i}`, { timeoutMs: 500 }));
      expect(error.code).toBe('MACVM_EXEC_TIMEOUT');
    }
    expect(await guestProcesses('sleep 3011')).toEqual([]);
    expect((await vm.exec('echo alive')).stdout).toBe('alive');

    const dir = await mkdtemp(join(tmpdir(), 'macvm-timeouts-'));
    try {
      await writeFile(join(dir, 'up.txt'), 'uploaded');
      await vm.upload(join(dir, 'up.txt'), '/tmp/up.txt');
      expect((await vm.exec('cat /tmp/up.txt')).stdout).toBe('uploaded');
      await vm.download('/tmp/up.txt', join(dir, 'down.txt'));
      expect(await readFile(join(dir, 'down.txt'), 'utf8')).toBe('uploaded');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    await vm.exec('mkdir -p /tmp/www && echo from-the-guest > /tmp/www/index.html && httpd -p 127.0.0.1:8081 -h /tmp/www');
    const forward = await vm.forwardGuestPort(8081);
    expect((await (await fetch(`http://127.0.0.1:${forward.port}/index.html`)).text()).trim()).toBe('from-the-guest');
    await forward.close();

    const server = createServer((_req, res) => res.end('from-the-host'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const guestPort = await vm.exposeHostPort((server.address() as { port: number }).port);
      expect((await vm.exec(`wget -qO- http://127.0.0.1:${guestPort}/`)).stdout).toBe('from-the-host');
    } finally {
      server.close();
    }
  });
});
