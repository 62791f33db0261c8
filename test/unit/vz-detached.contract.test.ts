import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Deadline } from '../../src/shared/deadline.js';
import { readVmRecord, writeVmRecord, type VmRecord } from '../../src/vm/runtime-dir.js';
import { processStartTime } from '../../src/util/process-identity.js';
import { attachVm } from '../../src/vm/attach.js';
import { hasExited } from '../../src/vm/vz/process-exit.js';
import { createVzProvider, type VzProviderOptions } from '../../src/vm/vz/provider.js';
import { VmhostClient } from '../../src/vm/vz/vmhost-client.js';
import { macvmErrorOf } from '../support/macvm-error.js';
import { GUEST_HOST_KEY, TEST_SESSION } from '../fixtures/vz/contract-values.js';
import { makeVzBundle, standInVmhost } from '../support/vz-stand-in.js';

/**
 * Contract tests for detached vz VMs (`macvm vm start --provider vz`): the real vmhost in listen
 * mode with the stand-in addon (test/fixtures/vz/fake-addon.cjs). A VM is booted either in this
 * process or — to prove it outlives the process that booted it — in a child process that then
 * exits (test/fixtures/vz/boot-detached.ts).
 */
const root = join(import.meta.dirname, '..', '..');
const fixtures = join(root, 'test', 'fixtures');
const session = TEST_SESSION;
const savedHome = process.env.MACVM_HOME;

let dir: string;
let home: string;
/** Every process a test started and may have left running (vmhosts run in their own sessions). */
const started: Array<{ pid: number; startTime: string | undefined }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-vzd-'));
  home = join(dir, 'home');
  process.env.MACVM_HOME = home;
  await makeVzBundle(home, 'sonoma');
});
afterEach(async () => {
  for (const { pid, startTime } of started.splice(0)) {
    if (await hasExited(pid, startTime)) continue;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && !(await hasExited(pid, startTime)); i++) await new Promise((r) => setTimeout(r, 20));
  }
  process.env.MACVM_HOME = savedHome;
  await rm(dir, { recursive: true, force: true });
});

const callsLog = () => join(dir, 'vz-calls.log');
const calls = async () => (await readFile(callsLog(), 'utf8')).trim().split('\n');
const gone = (path: string) => stat(path).then(
  () => false,
  () => true,
);

function provider(extra: Partial<VzProviderOptions> = {}) {
  return createVzProvider({
    home,
    images: { '*': { hostKey: GUEST_HOST_KEY } },
    allowFullCopy: true,
    detached: true,
    vmhost: standInVmhost(callsLog()),
    ...extra,
  });
}

async function bootHere(extra: Partial<VzProviderOptions> = {}) {
  const p = provider(extra);
  const deadline = new Deadline(60_000);
  const clone = await p.clone(await p.prepare('sonoma'), { session, deadline });
  try {
    const vm = await clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline });
    started.push({ pid: vm.pid!, startTime: (await readVmRecord(clone.runtimeDir))!.pidStartTime });
    return { clone, vm };
  } finally {
    deadline.finish();
  }
}

/** Boots in a child process, which must then exit by itself with the VM still running. */
async function bootInChildProcess(): Promise<{ id: string; runtimeDir: string; pid: number; record: VmRecord }> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(fixtures, 'vz', 'boot-detached.ts'), JSON.stringify({ image: 'sonoma', callsLog: callsLog() })], {
    env: { ...process.env, MACVM_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close' waits for the pipes too: it would hang if vmhost had inherited them.
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([closed, new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 30_000)))]);
  clearTimeout(timer);
  const printed = stdout.trim() ? (JSON.parse(stdout.trim()) as { id: string; runtimeDir: string; pid: number }) : undefined;
  if (printed?.pid) started.push({ pid: printed.pid, startTime: await processStartTime(printed.pid) });
  if (code === 'hung') {
    child.kill('SIGKILL');
    throw new Error(`the booting process did not exit by itself within 30 s (something kept its event loop alive)\n${stderr}`);
  }
  expect(code, stderr).toBe(0);
  const record = (await readVmRecord(printed!.runtimeDir))!;
  started[started.length - 1]!.startTime = record.pidStartTime;
  return { ...printed!, record };
}

describe('vz provider, detached VMs', { timeout: 90_000 }, () => {
  it('contract: a detached boot survives the process that booted it: vmhost and its VM still run, vm.json says detached', async () => {
    const { runtimeDir, pid, record } = await bootInChildProcess();
    expect(record).toMatchObject({ provider: 'vz', detached: true, pid, cpus: 2, memoryMiB: 4096 });
    expect(record.pidStartTime).toBeDefined();
    expect(await hasExited(pid, record.pidStartTime)).toBe(false);
    const client = await VmhostClient.connect(join(runtimeDir, 'vmhost.sock'), pid, { pidStartTime: record.pidStartTime });
    try {
      expect(await client.request({ cmd: 'state' })).toBe('running');
    } finally {
      await client.close();
    }
    expect(await calls()).not.toContain('stop');
    expect(await calls()).not.toContain('close');
  });

  it('contract: `vm stop` from another process (attachVm by id) asks the guest to stop, and vmhost exits', async () => {
    const { runtimeDir, pid, record } = await bootInChildProcess();
    const attached = await attachVm(record.id);
    expect(attached.dir).toBe(runtimeDir);
    const vm = attached.running!;
    expect(vm.pid).toBe(pid);
    await vm.stop({ gracefulMs: 5_000 });
    expect(await hasExited(pid, record.pidStartTime)).toBe(true);
    await vm.exited;
    expect((await calls()).slice(1)).toEqual(['start', 'requestStop', 'close']); // graceful: no hard stop needed
    expect(await gone(join(runtimeDir, 'vmhost.sock'))).toBe(true);
    await vm.stop(); // idempotent
  });

  it('contract: SIGTERM to a detached vmhost stops the VM, removes the socket, and vmhost exits 0', async () => {
    const { clone, vm } = await bootHere();
    expect(await readVmRecord(clone.runtimeDir)).toMatchObject({ detached: true, pid: vm.pid });
    process.kill(vm.pid!, 'SIGTERM');
    expect(await vm.exited).toEqual({ code: 0, signal: null });
    expect((await calls()).slice(1)).toEqual(['start', 'stop', 'close']);
    expect(await gone(join(clone.runtimeDir, 'vmhost.sock'))).toBe(true);
    await clone.destroy();
  });

  it('contract: the booting process stops its detached VM over the socket (hard stop with gracefulMs 0); destroy removes the clone', async () => {
    const { clone, vm } = await bootHere();
    await vm.stop({ gracefulMs: 0 });
    expect(await vm.exited).toEqual({ code: 0, signal: null });
    expect((await calls()).slice(1)).toEqual(['start', 'stop', 'close']);
    await clone.destroy();
    expect(await gone(clone.runtimeDir)).toBe(true);
  });

  it('contract: with its socket gone, an attached stop falls back to SIGTERM by PID', async () => {
    const { runtimeDir, pid, record } = await bootInChildProcess();
    await rm(join(runtimeDir, 'vmhost.sock'));
    await (await attachVm(record.id)).running!.stop({ gracefulMs: 1_000 });
    expect(await hasExited(pid, record.pidStartTime)).toBe(true);
    expect((await calls()).slice(1)).toEqual(['start', 'stop', 'close']); // vmhost's SIGTERM handler stopped the VM
    expect(await readFile(join(runtimeDir, 'vmhost.log'), 'utf8')).toMatch(/shutting down \(SIGTERM\)/);
  });

  it('contract: an attached stop never signals a process that merely reuses the recorded PID', async () => {
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    started.push({ pid: stranger.pid!, startTime: await processStartTime(stranger.pid!) });
    const runtimeDir = join(home, 'run', 'macvm-gone');
    await mkdir(runtimeDir, { recursive: true });
    const record: VmRecord = { id: 'macvm-gone', session: 'cli-x', provider: 'vz', image: 'sonoma', createdAt: new Date().toISOString(), detached: true, pid: stranger.pid!, pidStartTime: 'an earlier process' };
    await writeVmRecord(runtimeDir, record);
    const vm = (await attachVm(record.id)).running!;
    await vm.stop({ gracefulMs: 0 });
    await vm.exited;
    expect(stranger.exitCode).toBeNull();
    expect(await hasExited(stranger.pid!, undefined)).toBe(false);
  });

  it('contract: a detached vmhost that cannot load the addon fails the boot with MACVM_NATIVE_ADDON_MISSING and leaves no process', async () => {
    const p = provider({
      vmhost: {
        command: process.execPath,
        args: ['--import', import.meta.resolve('tsx'), join(root, 'src', 'vm', 'vz', 'vmhost-main.ts')],
        env: { ...process.env, MACVM_VZ_ADDON: join(dir, 'nope.node') },
      },
    });
    const deadline = new Deadline(60_000);
    const clone = await p.clone(await p.prepare('sonoma'), { session, deadline });
    const error = await macvmErrorOf(clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline }));
    deadline.finish();
    expect(error.code).toBe('MACVM_NATIVE_ADDON_MISSING');
    expect(error.message).toMatch(/vmhost could not start/);
    const socket = join(clone.runtimeDir, 'vmhost.sock');
    expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(socket);
    await clone.destroy();
  });

  it('contract: a vmhost that never opens its socket fails the boot with MACVM_BOOT_FAILED, its log as the hint, and is ended', async () => {
    const p = provider({ vmhost: { command: process.execPath, args: ['-e', "console.error('still loading the addon'); setInterval(() => {}, 1000)", '--'] } });
    const deadline = new Deadline(3_000);
    const clone = await p.clone(await p.prepare('sonoma'), { session, deadline });
    const error = await macvmErrorOf(clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline }));
    deadline.finish();
    expect(error.code).toBe('MACVM_BOOT_FAILED');
    expect(error.message).toMatch(/did not accept connections/);
    expect(error.hint).toMatch(/still loading the addon/);
    expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(join(clone.runtimeDir, 'vmhost.sock'));
    await clone.destroy();
  });
});
