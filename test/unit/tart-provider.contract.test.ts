import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { attachVm } from '../../src/vm/attach.js';
import { Deadline } from '../../src/shared/deadline.js';
import { readVmRecord } from '../../src/vm/runtime-dir.js';
import { createTartProvider, type TartProviderOptions } from '../../src/vm/tart/provider.js';
import { isAlive } from '../../src/util/process-identity.js';
import type { RunningVM } from '../../src/vm/types.js';
import { installFakeTart, type FakeTart } from '../support/tart-stand-in.js';

/**
 * Contract tests: the tart provider against a stand-in `tart` on PATH that replays the real
 * CLI's documented output and exit codes (test/fixtures/tart/fake-tart.mjs).
 */
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEu0fQnE6t1bB1yHc2ZbcTg3DXXd1tZ9m7G9bV0Tn5pE';
const session = { id: 'test-session', pid: process.pid };

let dir: string;
let tartHome: string;
let env: NodeJS.ProcessEnv;
let fakeTart: FakeTart;
const running: RunningVM[] = [];
const savedHome = process.env.MACVM_HOME;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-tart-'));
  fakeTart = await installFakeTart(dir, 'sonoma-base');
  tartHome = fakeTart.home;
  env = fakeTart.env;
  process.env.MACVM_HOME = join(dir, 'macvm-home');
});

afterEach(async () => {
  for (const vm of running.splice(0)) await vm.stop({ gracefulMs: 0 }).catch(() => {});
  process.env.MACVM_HOME = savedHome;
  await rm(dir, { recursive: true, force: true });
});

function provider(extra: Partial<TartProviderOptions> & { env?: NodeJS.ProcessEnv } = {}) {
  return createTartProvider({ env, images: { 'sonoma-base': { hostKey: HOST_KEY } }, ...extra });
}
const argvLog = () => fakeTart.argvLog();

// Each test starts several processes; on a loaded 2-core host that can take seconds.
describe('tart provider contract', { timeout: 60_000 }, () => {
  it('contract: prepare finds the image in `tart list --format json` with admin/admin and the pinned host key', async () => {
    const image = await provider().prepare('sonoma-base');
    expect(image).toMatchObject({ name: 'sonoma-base', provider: 'tart', os: 'macos', arch: 'aarch64', facts: { tartSource: 'local' } });
    expect(image.ssh).toEqual({ user: 'admin', password: 'admin', privateKeyPath: undefined, hostKey: HOST_KEY });
    expect(await argvLog()).toEqual([['list', '--format', 'json']]);
  });

  it('contract: prepare refuses unknown images and images without a pinned host key', async () => {
    await expect(provider().prepare('nope')).rejects.toMatchObject({ code: 'MACVM_IMAGE_NOT_FOUND' });
    await expect(provider({ images: {} }).prepare('sonoma-base')).rejects.toMatchObject({ code: 'MACVM_CONFIG_INVALID', message: expect.stringMatching(/ssh-keyscan/) });
    await expect(provider({ images: { 'sonoma-base': { hostKey: 'not a key' } } }).prepare('sonoma-base')).rejects.toMatchObject({ code: 'MACVM_CONFIG_INVALID' });
    const insecure = await provider({ images: {}, insecureAcceptAnyHostKey: true }).prepare('sonoma-base');
    expect(insecure.ssh.hostKey).toBeUndefined();
    // a registry reference is left for `tart clone` to pull
    expect((await provider({ images: { '*': { hostKey: HOST_KEY } } }).prepare('ghcr.io/cirruslabs/macos-sonoma-base:latest')).facts.tartSource).toBe('remote');
  });

  it('contract: clone → boot → address → stop → destroy drives tart and keeps the runtime record', async () => {
    const p = provider();
    const image = await p.prepare('sonoma-base');
    const deadline = new Deadline(60_000);
    const clone = await p.clone(image, { session, deadline, diskGiB: 80 });
    const record = await readVmRecord(clone.runtimeDir);
    expect(record).toMatchObject({ id: clone.id, session: 'test-session', provider: 'tart', image: 'sonoma-base', cleanup: [['tart', 'stop', clone.id], ['tart', 'delete', clone.id]] });
    expect((await stat(clone.runtimeDir)).mode & 0o777).toBe(0o700);

    const vm = await clone.boot({ cpus: 2, memoryMiB: 4096, display: false, deadline });
    running.push(vm);
    expect(vm.pid).toBeGreaterThan(0);
    expect(await vm.endpoint(deadline)).toEqual({ host: '192.168.64.3', port: 22 });
    deadline.finish();
    const booted = await readVmRecord(clone.runtimeDir);
    expect(booted).toMatchObject({ pid: vm.pid, cpus: 2, memoryMiB: 4096, ssh: { host: '192.168.64.3', port: 22 } });
    expect(booted?.pidStartTime).toBeTruthy();

    await vm.stop({ gracefulMs: 3_000 });
    expect(await vm.exited).toEqual({ code: 0, signal: null });
    expect(isAlive(vm.pid!)).toBe(false);
    await clone.destroy();
    await clone.destroy(); // idempotent
    await expect(stat(clone.runtimeDir)).rejects.toMatchObject({ code: 'ENOENT' });

    const calls = (await argvLog()).filter((a) => a[0] !== 'list');
    expect(calls.slice(0, 3)).toEqual([
      ['clone', 'sonoma-base', clone.id],
      ['set', clone.id, '--disk-size', '80'],
      ['set', clone.id, '--cpu', '2', '--memory', '4096'],
    ]);
    // `tart run` and `tart ip` start side by side; on a busy host either may log first
    expect(calls.slice(3, 5)).toEqual(
      expect.arrayContaining([
        ['run', '--no-graphics', clone.id],
        ['ip', '--wait', expect.stringMatching(/^\d+$/), clone.id],
      ]),
    );
    expect(calls.slice(5)).toEqual([
      ['stop', '--timeout', '3', clone.id],
      ['delete', clone.id],
    ]);
  });

  it('contract: a detached VM is stopped and deleted by another process that knows only its id (vm stop / vm rm)', async () => {
    const clone = await provider({ detached: true }).clone(await provider().prepare('sonoma-base'), { session, deadline: new Deadline(60_000) });
    const vm = await clone.boot({ cpus: 2, memoryMiB: 4096, display: false, deadline: new Deadline(60_000) });
    running.push(vm);
    expect(await readVmRecord(clone.runtimeDir)).toMatchObject({ detached: true, pid: vm.pid });

    // What `macvm vm stop` / `vm rm` do in a later process: attach by id, stop, destroy.
    const savedPath = process.env.PATH;
    process.env.PATH = env.PATH;
    process.env.FAKE_TART_HOME = tartHome;
    try {
      const attached = await attachVm(clone.id);
      expect(attached.running?.pid).toBe(vm.pid);
      await attached.running!.stop({ gracefulMs: 2_000 });
      expect(isAlive(vm.pid!)).toBe(false);
      await attached.clone.destroy();
    } finally {
      process.env.PATH = savedPath;
      delete process.env.FAKE_TART_HOME;
    }
    await expect(stat(clone.runtimeDir)).rejects.toMatchObject({ code: 'ENOENT' });
    const calls = (await argvLog()).filter((a) => a[0] === 'stop' || a[0] === 'delete');
    expect(calls).toEqual([
      ['stop', '--timeout', '2', clone.id],
      ['delete', clone.id],
    ]);
    // tart's own record of the clone is gone, not just ours
    await expect(stat(join(tartHome, `${clone.id}.json`))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('contract: a clone of a missing image fails with MACVM_IMAGE_NOT_FOUND and leaves nothing behind', async () => {
    const p = provider({ images: { '*': { hostKey: HOST_KEY } } });
    const image = { ...(await p.prepare('sonoma-base')), location: 'gone' };
    const error = await p.clone(image, { session, deadline: new Deadline(30_000) }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_IMAGE_NOT_FOUND')).toBe(true);
    expect((error as Error).message).toMatch(/the specified VM "gone" does not exist/);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(dir, 'macvm-home', 'run'))).toEqual([]);
  });

  it('contract: "exceeds the system limit" from tart run becomes MACVM_SLOT_LIMIT', async () => {
    const p = provider({ env: { ...env, FAKE_TART_LIMIT: '1' } });
    const deadline = new Deadline(60_000);
    const clone = await p.clone(await p.prepare('sonoma-base'), { session, deadline });
    const vm = await clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline });
    const error = await vm.endpoint(deadline).catch((e: unknown) => e);
    deadline.finish();
    expect(isMacvmError(error, 'MACVM_SLOT_LIMIT')).toBe(true);
    await clone.destroy();
  });

  it('contract: a guest that never gets an address fails at the deadline, naming the step', async () => {
    const p = provider({ env: { ...env, FAKE_TART_IP_NEVER: '1' } });
    const setup = new Deadline(60_000);
    const clone = await p.clone(await p.prepare('sonoma-base'), { session, deadline: setup });
    const vm = await clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline: setup });
    setup.finish();
    running.push(vm);
    // a short deadline of its own, so only the address step can run out of time
    const error = await vm.endpoint(new Deadline(2_000)).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_DEADLINE_EXCEEDED')).toBe(true);
    expect((error as { details: { step: string } }).details.step).toBe('address');
    await clone.destroy();
    expect(isAlive(vm.pid!)).toBe(false);
  });

  it('contract: without tart installed, prepare says how to install it', async () => {
    const p = createTartProvider({ tart: join(dir, 'no-such-tart'), env, images: { '*': { hostKey: HOST_KEY } } });
    await expect(p.prepare('sonoma-base')).rejects.toMatchObject({ code: 'MACVM_HOST_TOOL_MISSING', message: expect.stringMatching(/brew install/) });
  });
});
