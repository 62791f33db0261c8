import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { destroyLeftover } from '../../src/runner/gc.js';
import { Deadline } from '../../src/shared/deadline.js';
import { homePaths } from '../../src/vm/home.js';
import { checkOrchard } from '../../src/vm/orchard/doctor.js';
import { createOrchardProvider, type OrchardProviderOptions } from '../../src/vm/orchard/provider.js';
import { readVmRecord } from '../../src/vm/runtime-dir.js';
import { startMacVM } from '../../src/machine/start.js';
import type { RunningVM } from '../../src/vm/types.js';
import { startFakeOrchard, type FakeOrchard, type FakeOrchardOptions } from '../fixtures/orchard/fake-controller.js';
import { ORCHARD_IMAGE as IMAGE, ORCHARD_TOKEN as TOKEN, orchardSettings, startOrchardStandIn } from '../support/orchard-stand-in.js';
import { macvmErrorOf } from '../support/macvm-error.js';
import { refusesConnections } from '../support/ports.js';
import { prepareSshd, startSshd, type Sshd } from '../support/sshd.js';

/**
 * Contract tests: the orchard provider against a stand-in Orchard controller
 * (test/fixtures/orchard/fake-controller.ts: a real HTTP server replaying cirruslabs/orchard's API),
 * with a real OpenSSH sshd playing the guest behind the controller's port-forward. No real
 * Orchard controller or Mac fleet runs here.
 */
const run = promisify(execFile);
const STUCK_IMAGE = 'ghcr.io/cirruslabs/macos-sequoia-xcode:latest';
const session = { id: 'test-session', pid: process.pid };

let sshd: Sshd;
let dir: string;
let fake: FakeOrchard | undefined;
const running: RunningVM[] = [];
const savedHome = process.env.MACVM_HOME;

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-orchard-'));
  process.env.MACVM_HOME = join(dir, 'macvm-home');
});

afterEach(async () => {
  for (const vm of running.splice(0)) await vm.stop().catch(() => {});
  await fake?.close();
  fake = undefined;
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  await rm(dir, { recursive: true, force: true });
});

async function controller(options: FakeOrchardOptions = {}): Promise<FakeOrchard> {
  fake = await startOrchardStandIn(sshd, { others: [{ name: 'reader', token: 'tok-reader', roles: ['compute:read'] }], stuckImages: [STUCK_IMAGE], ...options });
  return fake;
}

function provider(extra: Partial<OrchardProviderOptions> = {}): ReturnType<typeof createOrchardProvider> {
  return createOrchardProvider({
    ...(orchardSettings(fake!, sshd) as OrchardProviderOptions),
    // Neither the ORCHARD_* variables nor ~/.orchard of whoever runs the tests may leak in.
    env: { ORCHARD_HOME: join(dir, 'orchard-home') },
    pollIntervalMs: 50,
    ...extra,
  });
}

async function runtimeDirs(): Promise<string[]> {
  return readdir(homePaths().run).catch(() => []);
}

async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return check();
}

describe('orchard provider contract', { timeout: 60_000 }, () => {
  it('contract: create → running → SSH through the port-forward to a real sshd → destroy deletes the VM and closes the listener', async () => {
    await controller();
    const vm = await startMacVM({ image: 'sonoma', provider: provider(), cpus: 2, memory: '4GiB', disk: '80GiB', deadline: 30_000, session });
    let disposed = false;
    try {
      expect(vm.id).toMatch(/^macvm-test-session-[0-9a-f]{8}$/);
      expect(vm.facts).toMatchObject({ provider: 'orchard', image: 'sonoma', os: 'macos', cpus: 2, memoryMiB: 4096 });
      expect(vm.facts.imageFacts).toMatchObject({ controller: fake!.url, orchardImage: IMAGE, controllerVersion: '0.40.0-fake' });

      // A command really runs in the "guest", through 127.0.0.1:<random> → WebSocket → controller → sshd.
      const { stdout } = await vm.exec('echo through-orchard; id -un');
      expect(stdout).toBe(`through-orchard\n${sshd.user}`);
      expect(fake!.forwardsOpened).toBeGreaterThanOrEqual(1);

      // What the controller was asked, as Orchard's API has it.
      const post = fake!.requests.find((r) => r.method === 'POST' && r.path === '/v1/vms')!;
      expect(post).toMatchObject({ status: 200, user: 'macvm-ci' });
      expect(post.body).toEqual({ name: vm.id, image: IMAGE, cpu: 2, memory: 4096, diskSize: 80, headless: true });
      const forward = fake!.requests.find((r) => r.path === `/v1/vms/${vm.id}/port-forward` && r.status === 101)!;
      expect(forward).toMatchObject({ query: { port: '22', wait: '10' }, user: 'macvm-ci', userAgent: expect.stringMatching(/\S/) });
      expect(fake!.requests.some((r) => r.method === 'GET' && r.path === `/v1/vms/${vm.id}`)).toBe(true);

      // The runtime dir tags the VM and knows how to delete it — without the token.
      const runtimeDir = homePaths().vm(vm.id);
      const record = (await readVmRecord(runtimeDir))!;
      expect(record).toMatchObject({ id: vm.id, session: 'test-session', provider: 'orchard', image: 'sonoma', cpus: 2, memoryMiB: 4096, ssh: { host: '127.0.0.1' } });
      expect(record.cleanup).toHaveLength(1);
      expect(JSON.parse(record.cleanup![0]!.at(-1)!)).toEqual({ controller: fake!.url, vm: vm.id, cwd: process.cwd() });
      for (const file of await readdir(runtimeDir)) expect(await readFile(join(runtimeDir, file), 'utf8')).not.toContain(TOKEN);
      const consoleLog = await readFile(vm.consoleLogPath!, 'utf8');
      expect(consoleLog).toMatch(/status pending on fake-worker-1: cloning VM\.\.\./);
      expect(consoleLog).toMatch(/status running on fake-worker-1: VM started/);
      const listenerPort = record.ssh!.port;
      expect(await refusesConnections(listenerPort)).toBe(false);

      await vm.dispose();
      disposed = true;
      expect(fake!.vms.size).toBe(0);
      expect(fake!.requests.filter((r) => r.method === 'DELETE')).toMatchObject([{ path: `/v1/vms/${vm.id}`, status: 200 }]);
      expect(await refusesConnections(listenerPort)).toBe(true);
      expect(await eventually(() => fake!.openForwards === 0)).toBe(true);
      expect(existsSync(runtimeDir)).toBe(false);
      await vm.dispose(); // idempotent: no second DELETE
      expect(fake!.requests.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    } finally {
      if (!disposed) await vm.dispose().catch(() => {});
    }
  });

  it('contract: wrong credentials are a clear MACVM_CONFIG_INVALID that names the account, never the token; nothing is created', async () => {
    await controller();
    const wrong = 'tok-wrong-0000';
    const error = await macvmErrorOf(startMacVM({ image: 'sonoma', provider: provider({ serviceAccount: { name: 'macvm-ci', token: wrong } }), deadline: 10_000, session }));
    expect(error.code).toBe('MACVM_CONFIG_INVALID');
    expect(error.message).toMatch(/401 Unauthorized/);
    expect(error.message).toMatch(/service account "macvm-ci" \(from orchard\.serviceAccount\) was refused/);
    expect(error.message).toMatch(/ORCHARD_SERVICE_ACCOUNT_TOKEN/);
    expect(JSON.stringify(error.toJSON())).not.toContain(wrong);
    expect(error.details.step).toBe('prepare image');
    expect(fake!.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['GET /v1/controller/info 401']);
    expect(await runtimeDirs()).toEqual([]);

    // No credentials at all, against a controller that requires them.
    const anonymous = await macvmErrorOf(startMacVM({ image: 'sonoma', provider: provider({ serviceAccount: undefined }), deadline: 10_000, session }));
    expect(anonymous.code).toBe('MACVM_CONFIG_INVALID');
    expect(anonymous.message).toMatch(/no service account \(none is configured\)/);
  });

  it('contract: an account without compute:write is told which role it lacks, and leaves nothing behind', async () => {
    await controller();
    const error = await macvmErrorOf(startMacVM({ image: 'sonoma', provider: provider({ serviceAccount: { name: 'reader', token: 'tok-reader' } }), deadline: 10_000, session }));
    expect(error.code).toBe('MACVM_CONFIG_INVALID');
    expect(error.message).toMatch(/lacks a role it needs: all of the following roles must be present: compute:write/);
    expect(fake!.vms.size).toBe(0);
    // The refused POST created nothing, so nothing is deleted either.
    expect(fake!.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect(await runtimeDirs()).toEqual([]);
  });

  it('contract: a VM that never gets running fails the deadline naming the step and the status message, and is deleted', async () => {
    await controller();
    const p = provider({ images: { stuck: { source: STUCK_IMAGE, hostKey: sshd.hostKey } } });
    const started = Date.now();
    const error = await macvmErrorOf(startMacVM({ image: 'stuck', provider: p, deadline: 2_500, session }));
    expect(error.code).toBe('MACVM_DEADLINE_EXCEEDED');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error.message).toContain('step "boot (orchard VM pending, "cloning VM...")" did not finish');
    expect(error.details.step).toBe('boot (orchard VM pending, "cloning VM...")');
    expect(fake!.vms.size).toBe(0);
    const post = fake!.requests.find((r) => r.method === 'POST')!;
    const name = (post.body as { name: string }).name;
    expect(fake!.requests.filter((r) => r.method === 'DELETE')).toMatchObject([{ path: `/v1/vms/${name}`, status: 200 }]);
    expect(await runtimeDirs()).toEqual([]);
  });

  it('contract: an image the workers cannot get is MACVM_IMAGE_NOT_FOUND with the worker\'s message, and the VM is deleted', async () => {
    await controller();
    const p = provider({
      images: {
        gone: { source: 'ghcr.io/cirruslabs/macos-nope:latest', hostKey: sshd.hostKey },
        local: { source: 'no-such-local-vm', hostKey: sshd.hostKey },
      },
    });
    const remote = await macvmErrorOf(startMacVM({ image: 'gone', provider: p, deadline: 10_000, session }));
    expect(remote.code).toBe('MACVM_IMAGE_NOT_FOUND');
    expect(remote.message).toMatch(/Orchard could not get the image "ghcr\.io\/cirruslabs\/macos-nope:latest"/);
    expect(remote.message).toMatch(/failed to clone the VM: tart command failed: .*pulling manifest.*code: 404/);
    expect(remote.details).toMatchObject({ worker: 'fake-worker-1', step: 'boot' });

    const local = await macvmErrorOf(startMacVM({ image: 'local', provider: p, deadline: 10_000, session }));
    expect(local.code).toBe('MACVM_IMAGE_NOT_FOUND');
    expect(local.message).toMatch(/the specified VM \\"no-such-local-vm\\" does not exist/);

    expect(fake!.vms.size).toBe(0);
    expect(fake!.requests.filter((r) => r.method === 'DELETE' && r.status === 200)).toHaveLength(2);
    expect(await runtimeDirs()).toEqual([]);
  });

  it('contract: SSH waits out a guest whose sshd is not up yet (the controller answers 500 until it is)', async () => {
    const late = await prepareSshd();
    try {
      await controller({ guestPorts: { 22: late.port } });
      const p = provider({ images: { sonoma: { source: IMAGE, user: late.user, privateKeyPath: late.privateKeyPath, hostKey: late.hostKey } }, portForwardWaitSeconds: 1 });
      const starting = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        await late.start();
        fake!.guestPorts = { 22: late.port };
      })();
      const vm = await startMacVM({ image: 'sonoma', provider: p, deadline: 30_000, session });
      try {
        await starting;
        expect((await vm.exec('echo late')).stdout).toBe('late');
        expect(fake!.requests.some((r) => r.path.endsWith('/port-forward') && r.status === 500)).toBe(true);
        expect(await readFile(vm.consoleLogPath!, 'utf8')).toMatch(/port-forward to guest port 22 failed: .*500/);
      } finally {
        await vm.dispose();
      }
      expect(fake!.vms.size).toBe(0);
    } finally {
      await late.stop();
    }
  });

  it('contract: a pinned controller certificate is trusted alone, for REST and the port-forward; an unpinned or other one is refused', async () => {
    const certs = join(dir, 'certs');
    const make = async (name: string) => {
      await run('mkdir', ['-p', certs]);
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=orchard-controller', '-addext', 'subjectAltName=DNS:orchard-controller', '-keyout', join(certs, `${name}.key`), '-out', join(certs, `${name}.pem`)]);
      return { key: await readFile(join(certs, `${name}.key`), 'utf8'), cert: await readFile(join(certs, `${name}.pem`), 'utf8') };
    };
    const [real, other] = await Promise.all([make('controller'), make('other')]);
    await controller({ tls: real });
    expect(fake!.url).toMatch(/^https:\/\/127\.0\.0\.1:/);

    // Pinned (as a file path): the URL says 127.0.0.1, the certificate says orchard-controller — as with Orchard's own controller.
    const vm = await startMacVM({ image: 'sonoma', provider: provider({ certificate: join(certs, 'controller.pem') }), deadline: 30_000, session });
    try {
      expect((await vm.exec('echo over-tls')).stdout).toBe('over-tls');
    } finally {
      await vm.dispose();
    }
    expect(fake!.vms.size).toBe(0);

    const unpinned = await macvmErrorOf(provider().prepare('sonoma'));
    expect(unpinned.code).toBe('MACVM_PROVIDER_UNAVAILABLE');
    expect(unpinned.message).toMatch(/TLS certificate of the Orchard controller https:\/\/127\.0\.0\.1:\d+ is not trusted/);
    expect(unpinned.hint).toMatch(/orchard\.certificate/);

    const wrongPin = await macvmErrorOf(provider({ certificate: other.cert }).prepare('sonoma'));
    expect(wrongPin.code).toBe('MACVM_PROVIDER_UNAVAILABLE');
    expect(wrongPin.message).toMatch(/not trusted \(the pinned certificate from orchard\.certificate\)/);
  });

  it('contract: the reaper\'s cleanup command deletes the VM with credentials read again (config file or ORCHARD_* env), none on disk', async () => {
    await controller();
    const configFile = join(dir, 'macvm.config.ts');
    await writeFile(configFile, `export default { orchard: { controller: ${JSON.stringify(fake!.url)}, serviceAccount: { name: 'macvm-ci', token: ${JSON.stringify(TOKEN)} } } };\n`);
    const p = provider({ configFile, watchIntervalMs: 0 });
    const image = await p.prepare('sonoma');
    const boot = async () => {
      const deadline = new Deadline(20_000);
      const clone = await p.clone(image, { session, deadline });
      running.push(await clone.boot({ cpus: 1, memoryMiB: 2048, display: false, deadline }));
      deadline.finish();
      return clone;
    };

    // From the config file (a TypeScript one, imported through tsx as the runner does).
    const first = await boot();
    const record = (await readVmRecord(first.runtimeDir))!;
    expect(JSON.stringify(record)).not.toContain(TOKEN);
    expect(fake!.vms.has(first.id)).toBe(true);
    expect(await destroyLeftover(first.runtimeDir, record)).toEqual([]);
    expect(fake!.vms.has(first.id)).toBe(false);
    expect(existsSync(first.runtimeDir)).toBe(false);

    // From ORCHARD_SERVICE_ACCOUNT_* (the reaper inherits the runner's environment).
    await writeFile(configFile, 'export default {};\n');
    const second = await boot();
    const secondRecord = (await readVmRecord(second.runtimeDir))!;
    const saved = { name: process.env.ORCHARD_SERVICE_ACCOUNT_NAME, token: process.env.ORCHARD_SERVICE_ACCOUNT_TOKEN };
    try {
      // Without credentials the controller refuses, and the failure is reported (for `macvm gc` to say).
      delete process.env.ORCHARD_SERVICE_ACCOUNT_NAME;
      delete process.env.ORCHARD_SERVICE_ACCOUNT_TOKEN;
      const errors = await destroyLeftover(second.runtimeDir, secondRecord);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/401 Unauthorized/);
      expect(fake!.vms.has(second.id)).toBe(true);

      process.env.ORCHARD_SERVICE_ACCOUNT_NAME = 'macvm-ci';
      process.env.ORCHARD_SERVICE_ACCOUNT_TOKEN = TOKEN;
      expect(await destroyLeftover(second.runtimeDir, secondRecord)).toEqual([]);
      expect(fake!.vms.has(second.id)).toBe(false);
      // Already gone is success: cleanup may run twice (reaper, then gc).
      expect(await destroyLeftover(second.runtimeDir, secondRecord)).toEqual([]);
    } finally {
      for (const [key, value] of [['ORCHARD_SERVICE_ACCOUNT_NAME', saved.name], ['ORCHARD_SERVICE_ACCOUNT_TOKEN', saved.token]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it('contract: a VM that fails while in use counts as exited; stop() is idempotent and tolerates a VM already gone', async () => {
    await controller();
    const p = provider({ watchIntervalMs: 50 });
    const image = await p.prepare('sonoma');
    const deadline = new Deadline(20_000);
    const clone = await p.clone(image, { session, deadline });
    const vm = await clone.boot({ cpus: 1, memoryMiB: 2048, display: false, deadline });
    deadline.finish();
    running.push(vm);
    fake!.failVm(clone.id, 'VM is assigned to a worker that lost connection with the controller');
    const exited = await Promise.race([vm.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000))]);
    expect(exited).toBe(true);
    expect(await readFile(vm.consoleLogPath!, 'utf8')).toMatch(/VM gone: failed: VM is assigned to a worker that lost connection/);

    fake!.vms.delete(clone.id); // deleted behind our back
    await Promise.all([vm.stop(), vm.stop()]);
    await clone.destroy();
    await clone.destroy();
    expect(fake!.requests.filter((r) => r.method === 'DELETE')).toMatchObject([{ status: 404 }]);
    expect(existsSync(clone.runtimeDir)).toBe(false);
  });

  it('contract: an unreachable controller is MACVM_PROVIDER_UNAVAILABLE at prepare', async () => {
    const closed = await startFakeOrchard();
    const url = closed.url;
    await closed.close();
    const error = await macvmErrorOf(createOrchardProvider({ controller: url, images: { sonoma: { hostKey: sshd.hostKey } }, env: {} }).prepare('sonoma'));
    expect(error.code).toBe('MACVM_PROVIDER_UNAVAILABLE');
    expect(error.message).toMatch(/cannot be reached: .*ECONNREFUSED/);
    expect(error.hint).toMatch(/orchard\.controller/);
  });

  it('contract: doctor says whether the configured controller answers and accepts the account', async () => {
    await controller();
    const env = { ORCHARD_HOME: join(dir, 'orchard-home') };
    expect(await checkOrchard(undefined, { env })).toBeUndefined();
    const ok = await checkOrchard({ controller: fake!.url, serviceAccount: { name: 'macvm-ci', token: TOKEN } }, { env });
    expect(ok).toEqual({ ok: true, detail: `controller ${fake!.url} (Orchard 0.40.0-fake) reachable; service account "macvm-ci" accepted (compute:write)` });
    // The probe DELETE names a VM that cannot exist: nothing was deleted.
    expect(fake!.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([404]);

    const reader = await checkOrchard({ controller: fake!.url, serviceAccount: { name: 'reader', token: 'tok-reader' } }, { env });
    expect(reader).toMatchObject({ ok: false, detail: expect.stringMatching(/compute:write/) });
    const wrong = await checkOrchard({ controller: fake!.url }, { env: { ...env, ORCHARD_SERVICE_ACCOUNT_NAME: 'macvm-ci', ORCHARD_SERVICE_ACCOUNT_TOKEN: 'tok-nope-123' } });
    expect(wrong).toMatchObject({ ok: false, detail: expect.stringMatching(/from ORCHARD_SERVICE_ACCOUNT_NAME\/ORCHARD_SERVICE_ACCOUNT_TOKEN\) was refused/) });
    expect(JSON.stringify(wrong)).not.toContain('tok-nope-123');
  });
});
