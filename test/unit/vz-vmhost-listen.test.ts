import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VzAddon } from '../../src/vm/vz/addon.js';
import { childExit, hasExited } from '../../src/vm/vz/process-exit.js';
import { VmhostClient } from '../../src/vm/vz/vmhost-client.js';
import { listenVmhost } from '../../src/vm/vz/vmhost-listen.js';
import type { VmhostEvent } from '../../src/vm/vz/vmhost-protocol.js';
import type { VmhostServer } from '../../src/vm/vz/vmhost-server.js';
import { vmSpecIn } from '../fixtures/vz/contract-values.js';

/**
 * vmhost's listen mode (detached VMs): the line protocol on a unix socket, clients that come
 * and go, and a vmhost that ends with its VM. In-process against the stand-in addon where the
 * server's own behaviour is the subject, and as a real detached vmhost process where
 * process-level behaviour (exit, signals) is.
 */
const root = join(import.meta.dirname, '..', '..');
const vmhostMain = join(root, 'src', 'vm', 'vz', 'vmhost-main.ts');
const fakeAddonPath = join(root, 'test', 'fixtures', 'vz', 'fake-addon.cjs');

let dir: string;
let socketPath: string;
const servers: VmhostServer[] = [];
const clients: Array<VmhostClient<void>> = [];
const processes: number[] = [];

function fakeAddon(): VzAddon {
  process.env.MACVM_FAKE_VZ_LOG = join(dir, 'calls.log');
  return createRequire(import.meta.url)(fakeAddonPath) as VzAddon;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-listen-'));
  socketPath = join(dir, 'vmhost.sock');
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close(1_000)));
  await Promise.all(servers.splice(0).map((s) => s.shutdown('test over')));
  for (const pid of processes.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone, as it should be
    }
  }
  delete process.env.MACVM_FAKE_VZ_LOG;
  await rm(dir, { recursive: true, force: true });
});

const spec = () => vmSpecIn(dir);

async function listen(options: { idleExitMs?: number } = {}): Promise<VmhostServer> {
  const server = await listenVmhost(fakeAddon(), socketPath, () => {}, options);
  servers.push(server);
  return server;
}

async function connect(pid = process.pid): Promise<VmhostClient<void>> {
  const client = await VmhostClient.connect(socketPath, pid);
  clients.push(client);
  return client;
}

const calls = async () => (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n');
const gone = (path: string) => stat(path).then(
  () => false,
  () => true,
);

describe('vmhost listen mode', { timeout: 60_000 }, () => {
  it('contract: the socket is 0600; every client gets hello; a client leaving does not touch the VM', async () => {
    await listen();
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    const first = await connect();
    await first.request({ cmd: 'start', spec: spec() });
    await first.close();
    const second = await connect();
    expect(await second.request({ cmd: 'state' })).toBe('running');
    expect(await calls()).toEqual(['new 0e:5a:03:00:01:02 cpus=4 memory=8589934592', 'start']);
  });

  it('contract: events reach every client, replies only the one that asked; a guest shutdown ends vmhost and removes the socket', async () => {
    const server = await listen();
    const asker = await connect();
    const watcher = await connect();
    const seenByWatcher: VmhostEvent[] = [];
    watcher.on((e) => seenByWatcher.push(e));
    await asker.request({ cmd: 'start', spec: spec() });
    const watcherSawStop = watcher.waitFor((e) => e.event === 'stopped');
    await asker.request({ cmd: 'requestStop' });
    expect(await watcherSawStop).toEqual({ event: 'stopped', reason: 'guest' });
    await server.done;
    expect(seenByWatcher.filter((e) => e.event === 'state').map((e) => (e as { state: string }).state)).toEqual(['starting', 'running', 'stopped']);
    expect(seenByWatcher.some((e) => e.event === 'reply')).toBe(false);
    expect(await gone(socketPath)).toBe(true);
    expect(await calls()).toEqual(['new 0e:5a:03:00:01:02 cpus=4 memory=8589934592', 'start', 'requestStop', 'close']);
  });

  it('contract: the stop command stops the VM, its reply arrives, and vmhost ends', async () => {
    const server = await listen();
    const client = await connect();
    await client.request({ cmd: 'start', spec: spec() });
    await expect(client.request({ cmd: 'stop' })).resolves.toBeUndefined();
    await server.done;
    expect(await gone(socketPath)).toBe(true);
    expect(await calls()).toEqual(['new 0e:5a:03:00:01:02 cpus=4 memory=8589934592', 'start', 'stop', 'close']);
  });

  it('contract: a vmhost nobody asked for a VM exits once idle; one whose start failed ends at once', async () => {
    const idle = await listen({ idleExitMs: 500 });
    await (await connect()).close();
    await idle.done;
    expect(await gone(socketPath)).toBe(true);

    const refused = await listen();
    const client = await connect();
    await expect(client.request({ cmd: 'start', spec: { ...spec(), diskPath: join(dir, 'limit-exceeded.img') } })).rejects.toMatchObject({ code: 'MACVM_SLOT_LIMIT' });
    await refused.done;
    expect(await gone(socketPath)).toBe(true);
  });

  it('contract: a stale socket file is replaced; a live one is not taken over', async () => {
    await writeFile(socketPath, 'left behind by a SIGKILLed vmhost');
    const server = await listen();
    await connect();
    await server.shutdown('test');

    const live = createServer();
    await new Promise<void>((resolve) => live.listen(socketPath, resolve));
    try {
      await expect(listenVmhost(fakeAddon(), socketPath)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await new Promise((resolve) => live.close(resolve));
    }
  });

  it('contract: a real detached vmhost stops its VM, removes its socket and exits 0 on SIGTERM', async () => {
    const logFd = openSync(join(dir, 'vmhost.log'), 'a', 0o600);
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), vmhostMain, '--listen', socketPath], {
      env: { ...process.env, MACVM_VZ_ADDON: fakeAddonPath, MACVM_FAKE_VZ_LOG: join(dir, 'calls.log') },
      stdio: ['ignore', logFd, logFd],
      detached: true,
    });
    closeSync(logFd);
    processes.push(child.pid!);
    const exited = childExit(child);
    let client: VmhostClient<void> | undefined;
    for (let tries = 0; !client && tries < 600; tries++) {
      client = await VmhostClient.connect(socketPath, child.pid!, { exited }).catch(() => undefined);
      if (!client) await sleep(50);
    }
    clients.push(client!);
    await client!.request({ cmd: 'start', spec: spec() });
    await client!.close(); // disconnecting stops nothing
    await sleep(200);
    expect(await hasExited(child.pid!, undefined)).toBe(false);

    process.kill(child.pid!, 'SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(await gone(socketPath)).toBe(true);
    expect(await calls()).toEqual(['new 0e:5a:03:00:01:02 cpus=4 memory=8589934592', 'start', 'stop', 'close']);
    expect(await readFile(join(dir, 'vmhost.log'), 'utf8')).toMatch(/shutting down \(SIGTERM\)/);
  });
});
