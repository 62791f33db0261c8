/**
 * What a qemu guest can reach on the host. A test guest runs the code under test: by default
 * (`network: 'none'`) it sees the host only through what the spec exposes (exposeHostPort, an
 * SSH reverse forward), never the host's loopback services through slirp's 10.0.2.2 alias.
 * `network: 'nat'` is QEMU's plain user-mode NAT, which (QEMU 7.2 offers no way to turn the
 * alias off) also reaches the host's loopback: that is asserted too, so the README stays true.
 */
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/runner/config.js';
import { defaultRunContext } from '../../src/runner/default-context.js';
import type { RunContext } from '../../src/runner/run-context.js';
import { startSuiteVM } from '../../src/runner/suite-vm.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { startMacVM, type StartMacVMOptions } from '../../src/machine/start.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;
const started: MacVM[] = [];
const servers: Server[] = [];

async function boot(options: Partial<StartMacVMOptions> = {}): Promise<MacVM> {
  const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 90_000, ...options });
  started.push(vm);
  return vm;
}

/** An HTTP server on the host, bound to `host` only. */
async function hostServer(host: string, body: string): Promise<number> {
  const server = createServer((_req, res) => res.end(body));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

/**
 * busybox wget from inside the guest: the body, or undefined when the connection failed.
 * (Debian's busybox-static wget segfaults with -T, hence `timeout`.)
 */
async function guestGet(vm: MacVM, url: string): Promise<string | undefined> {
  const result = await vm.exec(`timeout 5 wget -q -O - ${url}`, { reject: false, timeoutMs: 20_000 });
  return result.exitCode === 0 ? result.stdout : undefined;
}

/** A TCP connect from inside the guest (busybox nc): true when it got through. */
async function guestConnects(vm: MacVM, host: string, port: number): Promise<boolean> {
  const result = await vm.exec(`echo | nc -w 3 ${host} ${port}`, { reject: false, timeoutMs: 20_000 });
  return result.exitCode === 0;
}

/** The host's first non-loopback IPv4 address (what NAT lets a guest reach), if any. */
function hostLanAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address;
}

beforeAll(async () => {
  testHome = await createTestHome();
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((vm) => vm.dispose()));
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
});

afterAll(async () => {
  await testHome?.cleanup();
});

describe('qemu guest network', () => {
  it("by default the guest cannot reach the host's loopback, but exposeHostPort still works", async () => {
    const port = await hostServer('127.0.0.1', 'host-loopback-secret');
    const other = await hostServer('127.0.0.1', 'another-loopback-service');
    const vm = await boot();
    // slirp's host alias (10.0.2.2) and any other address of the virtual network map to 127.0.0.1.
    expect(await guestGet(vm, `http://10.0.2.2:${port}/`)).toBeUndefined();
    expect(await guestConnects(vm, '10.0.2.2', other)).toBe(false);
    expect(await guestConnects(vm, '10.0.2.77', other)).toBe(false);
    const lan = hostLanAddress();
    if (lan) {
      const lanPort = await hostServer(lan, 'host-lan-service');
      expect(await guestConnects(vm, lan, lanPort)).toBe(false);
    }
    // What the spec exposes, it reaches.
    const guestPort = await vm.exposeHostPort(port);
    expect(await guestGet(vm, `http://127.0.0.1:${guestPort}/`)).toBe('host-loopback-secret');
    // ...and only that port.
    expect(await guestConnects(vm, '10.0.2.2', other)).toBe(false);
  });

  it("'nat' routes the guest's traffic out through the host, host loopback included (QEMU 7.2 cannot drop that alias)", async () => {
    const port = await hostServer('127.0.0.1', 'host-loopback-via-nat');
    const vm = await boot({ network: 'nat' });
    const lan = hostLanAddress();
    if (lan) {
      const lanPort = await hostServer(lan, 'host-lan-service');
      expect(await guestGet(vm, `http://${lan}:${lanPort}/`)).toBe('host-lan-service');
    }
    expect(await guestGet(vm, `http://10.0.2.2:${port}/`)).toBe('host-loopback-via-nat');
    const guestPort = await vm.exposeHostPort(port);
    expect(await guestGet(vm, `http://127.0.0.1:${guestPort}/`)).toBe('host-loopback-via-nat');
  });

  it("defaults.network from macvm.config.ts reaches a suite's VM, and a suite's own option wins", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'macvm-network-config-'));
    try {
      await writeFile(
        join(dir, 'macvm.config.ts'),
        `import { defineConfig } from ${JSON.stringify(resolve('src/runner/config.ts'))};\nexport default defineConfig({ provider: 'qemu', defaults: { network: 'nat' } });\n`,
      );
      const config = await loadConfig({ cwd: dir, env: { ...process.env, MACVM_HOME: testHome.home } });
      expect(config.defaults.network).toBe('nat');
      const context: RunContext = { ...defaultRunContext({ ...process.env, MACVM_HOME: testHome.home }), provider: 'qemu', defaults: config.defaults };
      const port = await hostServer('127.0.0.1', 'reached-through-config-nat');
      const natSuite = await startSuiteVM('nat from config', { image: 'linux-test', cpus: 1, memory: '256MiB' }, context);
      try {
        expect(await guestGet(natSuite!.vm, `http://10.0.2.2:${port}/`)).toBe('reached-through-config-nat');
      } finally {
        await natSuite!.release();
      }
      const closedSuite = await startSuiteVM('none overrides', { image: 'linux-test', cpus: 1, memory: '256MiB', network: 'none' }, context);
      try {
        expect(await guestGet(closedSuite!.vm, `http://10.0.2.2:${port}/`)).toBeUndefined();
      } finally {
        await closedSuite!.release();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an unknown network mode with MACVM_BAD_ARGUMENT before anything boots', async () => {
    await expect(boot({ network: 'bridged' as never })).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT', message: expect.stringMatching(/network/) });
  });
});
