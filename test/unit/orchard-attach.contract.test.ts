import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectGuest } from '../../src/guest/session.js';
import { attachVm } from '../../src/vm/attach.js';
import { Deadline } from '../../src/shared/deadline.js';
import { homePaths } from '../../src/vm/home.js';
import { createOrchardProvider, type OrchardProviderOptions, type OrchardRunningVM } from '../../src/vm/orchard/provider.js';
import { readVmRecord } from '../../src/vm/runtime-dir.js';
import type { GuestEndpoint } from '../../src/vm/types.js';
import { startFakeOrchard, type FakeOrchard } from '../fixtures/orchard/fake-controller.js';
import { macvmErrorOf } from '../support/macvm-error.js';
import { ORCHARD_TOKEN as TOKEN, orchardConfig, orchardSettings, startOrchardStandIn } from '../support/orchard-stand-in.js';
import { macvmFromSources } from '../support/run-macvm.js';
import { refusesConnections } from '../support/ports.js';
import { startSshd, type Sshd } from '../support/sshd.js';

/**
 * Contract tests: an Orchard VM started detached by one process (`macvm vm start`) and reached by
 * another that knows only its id (`vm exec` / `vm stop` / `vm rm`): a fresh port-forward of its
 * own through the stand-in controller (test/fixtures/orchard/fake-controller.ts) to a real sshd,
 * closed again so the process can exit; stopping deletes the VM on the controller.
 */
const session = { id: 'test-session', pid: process.pid };
const ORCHARD_ENV = ['ORCHARD_URL', 'ORCHARD_SERVICE_ACCOUNT_NAME', 'ORCHARD_SERVICE_ACCOUNT_TOKEN', 'ORCHARD_HOME'] as const;

let sshd: Sshd;
let dir: string;
let fake: FakeOrchard | undefined;
const others: FakeOrchard[] = [];
const savedHome = process.env.MACVM_HOME;
const savedOrchardEnv = Object.fromEntries(ORCHARD_ENV.map((key) => [key, process.env[key]]));

beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-orchard-attach-'));
  process.env.MACVM_HOME = join(dir, 'macvm-home');
  // Neither the ORCHARD_* variables nor ~/.orchard of whoever runs the tests may leak in.
  for (const key of ORCHARD_ENV) delete process.env[key];
  process.env.ORCHARD_HOME = join(dir, 'orchard-home');
  fake = await startOrchardStandIn(sshd, { others: [{ name: 'other', token: 'tok-for-another-controller', roles: ['compute:read', 'compute:write', 'compute:connect'] }] });
});

afterEach(async () => {
  await fake?.close();
  fake = undefined;
  for (const other of others.splice(0)) await other.close();
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  for (const key of ORCHARD_ENV) {
    if (savedOrchardEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedOrchardEnv[key];
  }
  await rm(dir, { recursive: true, force: true });
});

/** The provider settings macvm.config.ts gives (the orchard definition's settings()). */
function settings(configFile?: string): Record<string, unknown> {
  return orchardSettings(fake!, sshd, configFile ? { configFile } : {});
}

async function writeConfig(path: string, extra: Record<string, unknown> = {}): Promise<void> {
  await writeFile(path, `export default ${JSON.stringify(orchardConfig(fake!, sshd, extra), null, 2)};\n`);
}

/** A detached VM booted in this process, as `macvm vm start` boots it; its forward is then closed, as the CLI's exit closes it. */
async function startDetached(extra: Partial<OrchardProviderOptions> = {}): Promise<{ id: string; runtimeDir: string; firstPort: number }> {
  const provider = createOrchardProvider({ ...(settings() as OrchardProviderOptions), env: { ORCHARD_HOME: join(dir, 'orchard-home') }, pollIntervalMs: 50, watchIntervalMs: 0, detached: true, ...extra });
  const image = await provider.prepare('sonoma');
  const deadline = new Deadline(20_000);
  try {
    const clone = await provider.clone(image, { session, deadline });
    const vm = (await clone.boot({ cpus: 2, memoryMiB: 4096, display: false, deadline })) as OrchardRunningVM;
    const endpoint = await vm.endpoint(deadline);
    expect(await run(endpoint, 'echo from-the-starting-process')).toBe('from-the-starting-process');
    await vm.disconnect();
    expect(await refusesConnections(endpoint.port)).toBe(true);
    return { id: clone.id, runtimeDir: clone.runtimeDir, firstPort: endpoint.port };
  } finally {
    deadline.finish();
  }
}

async function run(endpoint: GuestEndpoint, command: string): Promise<string> {
  const ssh = await connectGuest({ host: endpoint.host, port: endpoint.port, credentials: sshd.credentials, connectTimeoutMs: 10_000 });
  try {
    return (await ssh.exec(command)).stdout;
  } finally {
    await ssh.close();
  }
}

async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return check();
}

/** The real CLI (from the sources) in a process of its own, in `cwd`; it must exit by itself within 45 s. */
function macvm(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // ORCHARD_* and MACVM_PROVIDER are unset: the config file alone decides.
  return macvmFromSources(args, { cwd, env: { MACVM_HOME: process.env.MACVM_HOME, ORCHARD_HOME: join(dir, 'orchard-home'), ORCHARD_URL: undefined, ORCHARD_SERVICE_ACCOUNT_NAME: undefined, ORCHARD_SERVICE_ACCOUNT_TOKEN: undefined, MACVM_PROVIDER: undefined } });
}

describe('orchard: a detached VM reached from another process', { timeout: 90_000 }, () => {
  it('contract: attachVm opens a fresh port-forward, leaves vm.json alone, disconnect() closes only it, stop()/destroy() delete on the controller', async () => {
    const { id, runtimeDir, firstPort } = await startDetached();
    // The listener of the starting process is gone; its port was never recorded.
    const record = (await readVmRecord(runtimeDir))!;
    expect(record).toMatchObject({ id, provider: 'orchard', detached: true, cpus: 2, memoryMiB: 4096 });
    expect(record.ssh).toBeUndefined();
    await eventually(() => fake!.openForwards === 0);
    expect(fake!.openForwards).toBe(0);
    const forwardsBefore = fake!.forwardsOpened;

    const attached = await attachVm(id, { settings: settings() });
    expect(attached.running).toBeDefined();
    expect(attached.running!.pid).toBeUndefined();
    const deadline = new Deadline(20_000);
    const endpoint = await attached.running!.endpoint(deadline);
    deadline.finish();
    expect(endpoint.host).toBe('127.0.0.1');
    expect(await run(endpoint, 'echo through-a-new-forward; id -un')).toBe(`through-a-new-forward\n${sshd.user}`);
    expect(fake!.forwardsOpened).toBeGreaterThan(forwardsBefore);
    const forwards = fake!.requests.filter((r) => r.path === `/v1/vms/${id}/port-forward` && r.status === 101);
    expect(forwards.at(-1)).toMatchObject({ user: 'macvm-ci', query: { port: '22' } });
    // The controller was asked whether the VM still exists before the listener opened.
    expect(fake!.requests.filter((r) => r.method === 'GET' && r.path === `/v1/vms/${id}`).at(-1)).toMatchObject({ status: 200, user: 'macvm-ci' });
    // vm.json is the same: no port that dies with this process.
    expect(await readVmRecord(runtimeDir)).toEqual(record);

    await attached.disconnect();
    expect(await refusesConnections(endpoint.port)).toBe(true);
    expect(await eventually(() => fake!.openForwards === 0)).toBe(true);
    expect(await readFile(join(runtimeDir, 'console.log'), 'utf8')).toContain(`port-forward on 127.0.0.1:${endpoint.port} closed`);
    expect(fake!.vms.has(id)).toBe(true); // the VM keeps running
    expect(fake!.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect(await refusesConnections(firstPort)).toBe(true);

    // `vm stop`: Orchard has no stop, so the VM is deleted; the runtime dir stays for `vm rm`.
    await Promise.all([attached.running!.stop(), attached.running!.stop()]);
    expect(fake!.vms.has(id)).toBe(false);
    expect(fake!.requests.filter((r) => r.method === 'DELETE')).toMatchObject([{ path: `/v1/vms/${id}`, status: 200, user: 'macvm-ci' }]);
    expect(existsSync(runtimeDir)).toBe(true);

    // A later process is told plainly that the VM is gone, and opens no listener.
    const later = await attachVm(id, { settings: settings() });
    const gone = await macvmErrorOf(later.running!.endpoint(new Deadline(10_000)));
    expect(gone.code).toBe('MACVM_VM_STOPPED');
    expect(gone.message).toMatch(new RegExp(`The Orchard VM ${id} no longer exists on ${fake!.url.replace(/[.:/]/g, '\\$&')}`));
    expect(gone.hint).toMatch(/macvm vm rm/);

    // `vm rm`: 404 counts as gone; the runtime dir goes; a second destroy asks nothing.
    await later.clone.destroy();
    await later.clone.destroy();
    expect(existsSync(runtimeDir)).toBe(false);
    expect(fake!.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([200, 404]);
    expect((await macvmErrorOf(attachVm(id))).code).toBe('MACVM_VM_NOT_FOUND');
  });

  it('contract: without settings for its controller, the credentials the VM was created with are used; another controller\'s token is never sent', async () => {
    const configFile = join(dir, 'macvm.config.ts');
    await writeConfig(configFile);
    const { id, runtimeDir } = await startDetached({ configFile });

    // Settings for ANOTHER controller (the config changed, or another project): they are not used for this VM.
    const other = await startFakeOrchard({ serviceAccounts: [{ name: 'other', token: 'tok-for-another-controller', roles: ['compute:read', 'compute:write'] }] });
    others.push(other);
    const elsewhere = await attachVm(id, { settings: { controller: other.url, serviceAccount: { name: 'other', token: 'tok-for-another-controller' }, images: {} } });
    const deadline = new Deadline(20_000);
    const endpoint = await elsewhere.running!.endpoint(deadline);
    deadline.finish();
    try {
      expect(await run(endpoint, 'echo recorded-credentials')).toBe('recorded-credentials');
    } finally {
      await elsewhere.disconnect();
    }
    expect(await refusesConnections(endpoint.port)).toBe(true);
    expect(other.requests).toEqual([]);
    expect(fake!.requests.filter((r) => r.user === 'other')).toEqual([]);

    // No settings at all (a caller that has no config): the recorded config file is read again.
    const bare = await attachVm(id);
    await bare.clone.destroy();
    expect(fake!.requests.filter((r) => r.method === 'DELETE')).toMatchObject([{ path: `/v1/vms/${id}`, status: 200, user: 'macvm-ci' }]);
    expect(fake!.vms.size).toBe(0);
    expect(existsSync(runtimeDir)).toBe(false);
  });

  it('contract: the CLI — vm start exits and names controller and VM; vm ls shows no dead port; vm exec runs through its own forward and exits; vm stop deletes; vm rm removes', async () => {
    const project = join(dir, 'project');
    await mkdir(project);
    await writeConfig(join(project, 'macvm.config.ts'));

    const started = await macvm(['vm', 'start', 'sonoma', '--json', '--deadline', '30'], project);
    expect(started.code, started.stderr).toBe(0);
    const vm = JSON.parse(started.stdout) as { id: string; provider: string; ssh?: unknown; orchard: { controller: string; vm: string } };
    expect(vm).toMatchObject({ provider: 'orchard', image: 'sonoma', orchard: { controller: fake!.url, vm: vm.id } });
    expect(vm.ssh).toBeUndefined();
    // The CLI has exited, and so has its forward; the VM has not.
    expect(await eventually(() => fake!.openForwards === 0)).toBe(true);
    expect(fake!.vms.get(vm.id)?.status).toBe('running');
    const record = (await readVmRecord(homePaths().vm(vm.id)))!;
    expect(record.ssh).toBeUndefined();
    expect(JSON.stringify(record)).not.toContain(TOKEN);

    const table = await macvm(['vm', 'ls'], project);
    expect(table.stdout).toMatch(new RegExp(`${vm.id}\\s+sonoma\\s+orchard\\s+remote\\s+via ${fake!.url.replace(/[.:/]/g, '\\$&')}\\s`));
    const listed = JSON.parse((await macvm(['vm', 'ls', '--json'], project)).stdout) as unknown[];
    expect(listed).toEqual([expect.objectContaining({ id: vm.id, provider: 'orchard', state: 'remote', detached: true, orchard: { controller: fake!.url, vm: vm.id } })]);

    const forwardsBefore = fake!.forwardsOpened;
    const exec = await macvm(['vm', 'exec', vm.id, '--', 'sh', '-c', 'echo "in the guest"; echo oops >&2; exit 3'], project);
    expect(exec).toMatchObject({ code: 3, stdout: 'in the guest\n', stderr: 'oops\n' });
    expect(fake!.forwardsOpened).toBeGreaterThan(forwardsBefore);
    expect(await eventually(() => fake!.openForwards === 0)).toBe(true);
    // exec closed the listener it opened (not just exited with it open).
    const log = await readFile(join(homePaths().vm(vm.id), 'console.log'), 'utf8');
    const port = /port-forward of process \d+ listening on 127\.0\.0\.1:(\d+)/.exec(log)?.[1];
    expect(port, log).toBeDefined();
    expect(log).toContain(`port-forward on 127.0.0.1:${port} closed`);

    const stopped = await macvm(['vm', 'stop', vm.id], project);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toBe(`${vm.id} deleted on ${fake!.url} (Orchard cannot stop a VM and keep it; \`macvm vm rm ${vm.id}\` removes its runtime dir)\n`);
    expect(fake!.vms.has(vm.id)).toBe(false);
    expect(existsSync(homePaths().vm(vm.id))).toBe(true);

    const afterStop = await macvm(['vm', 'exec', vm.id, '--', 'true'], project);
    expect(afterStop.code).toBe(1);
    expect(afterStop.stderr).toMatch(/no longer exists on .*\[MACVM_VM_STOPPED\]/s);

    expect(await macvm(['vm', 'rm', vm.id], project)).toMatchObject({ code: 0, stdout: `${vm.id} removed\n` });
    expect(await readdir(homePaths().run)).toEqual([]);
    expect(fake!.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([200, 404]);
  });

  it('contract: vm start without --json says where the VM lives and how to reach it, not a port that dies with it', async () => {
    const project = join(dir, 'project');
    await mkdir(project);
    await writeConfig(join(project, 'macvm.config.ts'), { provider: 'qemu' });

    const started = await macvm(['vm', 'start', 'sonoma', '--provider', 'orchard', '--deadline', '30'], project);
    expect(started.code, started.stderr).toBe(0);
    const id = /^(macvm-\S+)\s/.exec(started.stdout)?.[1];
    expect(id, started.stdout).toBeDefined();
    expect(started.stdout).toMatch(new RegExp(`^${id}  ready in \\d+\\.\\ds  \\(Orchard VM ${id} on ${fake!.url.replace(/[.:/]/g, '\\$&')}; reach it with \`macvm vm exec\`\\)\n`));
    expect(started.stdout).toContain(`macvm vm exec ${id} -- uname -a`);
    // The listener the start went through had a port on 127.0.0.1 (the controller's own address here is one too).
    expect(started.stdout).not.toMatch(new RegExp(`\\bssh\\b|127\\.0\\.0\\.1:(?!${new URL(fake!.url).port}\\b)\\d+`));

    expect(await macvm(['vm', 'rm', id!], project)).toMatchObject({ code: 0, stdout: `${id} removed\n` });
    expect(fake!.vms.size).toBe(0);
    expect(await readdir(homePaths().run)).toEqual([]);
  });
});
