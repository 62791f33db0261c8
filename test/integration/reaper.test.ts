import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gcCommand } from '../../src/runner/commands/gc.js';
import { sweepDeadSessions } from '../../src/runner/gc.js';
import { registerSession } from '../../src/runner/sessions.js';
import { isAlive, isRunning, processStartTime } from '../../src/util/process-identity.js';
import { writeVmRecord, type VmRecord } from '../../src/vm/runtime-dir.js';
import { deadPid, registerDeadSession } from '../support/dead-session.js';

const fakeRunner = resolve('test/support/fake-runner.ts');
let home: string;
/** Every process these tests start, directly or through a stand-in, killed in afterEach if still there. */
const started: number[] = [];
const runners: ChildProcess[] = [];

beforeEach(async () => {
  // Short: unix socket paths must stay under ~104 bytes.
  home = await mkdtemp(join(tmpdir(), 'mvr-'));
});

afterEach(async () => {
  for (const child of runners.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of started.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  await rm(home, { recursive: true, force: true });
});

interface Ready {
  session: string;
  vmId: string;
  vmPid: number;
  reaperPid: number;
  marker: string;
}

async function startFakeRunner(session: string): Promise<{ child: ChildProcess; ready: Ready; lines: AsyncIterator<string> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fakeRunner, JSON.stringify({ session, vmId: `vm-${session}` })], {
    env: { ...process.env, MACVM_HOME: home },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  runners.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new Error('the fake runner exited before it was ready');
  const ready = JSON.parse(first.value) as Ready;
  started.push(ready.vmPid, ready.reaperPid);
  return { child, ready, lines };
}

/** Polls until `probe` is true; false if it never was within `ms`. */
async function within(ms: number, probe: () => Promise<boolean> | boolean): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > end) return false;
    await sleep(100);
  }
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((done) => child.once('exit', () => done()));

describe('reaper', () => {
  it('removes the VM, its clone and the session within 10 s of the runner being SIGKILLed', async () => {
    const { child, ready } = await startFakeRunner('s-kill');
    const runDir = join(home, 'run', ready.vmId);
    const sessionDir = join(home, 'sessions', 's-kill');
    expect(await isRunning(ready.vmPid)).toBe(true);
    expect(await isRunning(ready.reaperPid)).toBe(true);
    expect(existsSync(join(runDir, 'vm.json'))).toBe(true);
    expect(existsSync(join(sessionDir, 'session.json'))).toBe(true);
    expect(existsSync(ready.marker)).toBe(true);

    child.kill('SIGKILL');
    await exited(child);
    const cleaned = await within(10_000, async () => !(await isRunning(ready.vmPid)) && !existsSync(runDir) && !existsSync(sessionDir) && !existsSync(ready.marker));
    expect({ vmRunning: await isRunning(ready.vmPid), runDir: existsSync(runDir), sessionDir: existsSync(sessionDir), marker: existsSync(ready.marker) }).toEqual({
      vmRunning: false,
      runDir: false,
      sessionDir: false,
      marker: false,
    });
    expect(cleaned).toBe(true);
    expect(await within(5_000, async () => !(await isRunning(ready.reaperPid)))).toBe(true);
  });

  it('on a clean goodbye sweeps what the runner left, removes the session and exits', async () => {
    const { child, ready, lines } = await startFakeRunner('s-stop');
    child.stdin!.write('stop\n');
    const reply = await lines.next();
    expect(reply.value).toBe('stopped');
    await exited(child);
    expect(child.exitCode).toBe(0);
    // stop() resolves once the reaper has swept: no polling needed.
    expect(await isRunning(ready.vmPid)).toBe(false);
    expect(existsSync(join(home, 'run', ready.vmId))).toBe(false);
    expect(existsSync(ready.marker)).toBe(false);
    expect(existsSync(join(home, 'sessions', 's-stop'))).toBe(false);
    expect(await within(5_000, async () => !(await isRunning(ready.reaperPid)))).toBe(true);
  });
});

describe('reaper without a runner', () => {
  const reaperMain = resolve('src/runner/reaper-main.ts');

  async function runIdleReaper(session: string): Promise<number | null> {
    const dir = join(home, 'sessions', session);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const child = spawn(process.execPath, ['--import', 'tsx', reaperMain, JSON.stringify({ session, home, socket: join(dir, 'reaper.sock'), idleMs: 300 })], { stdio: 'ignore' });
    runners.push(child);
    await exited(child);
    return child.exitCode;
  }

  it('exits by itself when no runner connects, sweeping only if the runner is already dead', async () => {
    // Runner alive (this process): the reaper leaves its VM alone.
    await registerSession({ id: 's-alive', pid: process.pid }, { home });
    const vm = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    vm.unref();
    started.push(vm.pid!);
    const runDir = join(home, 'run', 'vm-idle');
    await mkdir(runDir, { recursive: true });
    await writeVmRecord(runDir, { id: 'vm-idle', session: 's-alive', provider: 'qemu', image: 'fake', createdAt: new Date().toISOString(), pid: vm.pid!, pidStartTime: await processStartTime(vm.pid!) });
    expect(await runIdleReaper('s-alive')).toBe(0);
    expect(await isRunning(vm.pid!)).toBe(true);
    expect(existsSync(runDir)).toBe(true);

    // Runner dead: the same reaper sweeps the session before it goes.
    await registerDeadSession('s-alive', home);
    expect(await runIdleReaper('s-alive')).toBe(0);
    expect(await isRunning(vm.pid!)).toBe(false);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(join(home, 'sessions', 's-alive'))).toBe(false);
  });
});

describe('gc', () => {
  /** A real process standing in for a VM, in its own process group like qemu. */
  function fakeVm(): number {
    const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    child.unref();
    started.push(child.pid!);
    return child.pid!;
  }

  async function vmDir(id: string, record: Partial<VmRecord>): Promise<string> {
    const dir = join(home, 'run', id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeVmRecord(dir, { id, session: 'none', provider: 'qemu', image: 'fake', createdAt: new Date().toISOString(), ...record });
    return dir;
  }

  const deadSession = (id: string) => registerDeadSession(id, home);

  it('removes a dead session\'s leftovers, leaves a live session and a detached VM, and never signals a reused pid', async () => {
    await deadSession('s-dead');
    await registerSession({ id: 's-live', pid: process.pid }, { home });
    const deadVm = fakeVm();
    const liveVm = fakeVm();
    const detachedVm = fakeVm();
    const reusedPid = fakeVm();
    await vmDir('vm-dead', { session: 's-dead', pid: deadVm, pidStartTime: await processStartTime(deadVm) });
    await vmDir('vm-live', { session: 's-live', pid: liveVm, pidStartTime: await processStartTime(liveVm) });
    await vmDir('vm-detached', { session: 's-dead', pid: detachedVm, pidStartTime: await processStartTime(detachedVm), detached: true });
    // Alive pid, but a start time from another process: the PID was reused.
    await vmDir('vm-reused', { session: 's-dead', pid: reusedPid, pidStartTime: 'not-this-process' });

    const report = await sweepDeadSessions({ home });
    expect(report.removed.filter((r) => r.kind === 'vm').map((r) => r.id).sort()).toEqual(['vm-dead', 'vm-reused']);
    expect(report.removed.filter((r) => r.kind === 'session').map((r) => r.id)).toEqual(['s-dead']);
    expect(report.kept.map((k) => k.id).sort()).toEqual(['s-live', 'vm-detached', 'vm-live']);
    expect((await readdir(join(home, 'run'))).sort()).toEqual(['vm-detached', 'vm-live']);
    expect(await readdir(join(home, 'sessions'))).toEqual(['s-live']);
    expect(await isRunning(deadVm)).toBe(false);
    expect(await isRunning(reusedPid)).toBe(true);
    expect(await isRunning(liveVm)).toBe(true);
    expect(await isRunning(detachedVm)).toBe(true);

    // --all takes the detached VM too, never the live session's.
    const all = await sweepDeadSessions({ home, all: true });
    expect(all.removed.map((r) => r.id)).toEqual(['vm-detached']);
    expect(await isRunning(detachedVm)).toBe(false);
    expect(await isRunning(liveVm)).toBe(true);
  });

  it('removes a running VM of an unknown session once the process that made it is dead; keeps it while that owner lives', async () => {
    const gone = { pid: await deadPid() };
    const orphan = fakeVm();
    const owned = fakeVm();
    await vmDir('vm-orphan', { session: 's-unknown', pid: orphan, pidStartTime: await processStartTime(orphan), owner: { pid: gone.pid!, pidStartTime: '1' } });
    await vmDir('vm-owned', { session: 's-unknown', pid: owned, pidStartTime: await processStartTime(owned), owner: { pid: process.pid, pidStartTime: await processStartTime(process.pid) } });
    const report = await sweepDeadSessions({ home });
    expect(report.removed.map((r) => r.id)).toEqual(['vm-orphan']);
    expect(await isRunning(orphan)).toBe(false);
    expect(await isRunning(owned)).toBe(true);
  });

  it('removes a runtime dir whose maker died before tagging it; keeps one still being made', async () => {
    const gone = { pid: await deadPid() };
    const interrupted = join(home, 'run', `.staging-${gone.pid}-abc`);
    const inProgress = join(home, 'run', `.staging-${process.pid}-def`);
    for (const dir of [interrupted, inProgress]) await mkdir(dir, { recursive: true, mode: 0o700 });
    const report = await sweepDeadSessions({ home });
    expect(report.removed.map((r) => r.reason)).toEqual([`creation interrupted (pid ${gone.pid} is gone)`]);
    expect(existsSync(interrupted)).toBe(false);
    expect(existsSync(inProgress)).toBe(true);
  });

  it('`macvm gc --dry-run --json` reports without removing; `macvm gc` removes and says what', async () => {
    await deadSession('s-gone');
    const vm = fakeVm();
    await vmDir('vm-left', { session: 's-gone', pid: vm, pidStartTime: await processStartTime(vm) });
    // A slot whose holder died: the dry run must list it as the real run removes it.
    const deadSlot = join(home, 'slots', 'qemu', 'slot-0.json');
    await mkdir(join(home, 'slots', 'qemu'), { recursive: true });
    await writeFile(deadSlot, JSON.stringify({ session: 's-gone', suite: 'x', pid: 2 ** 22 + 7, pidStartTime: '1', ticket: 't' }));
    const previous = process.env.MACVM_HOME;
    process.env.MACVM_HOME = home;
    try {
      const dry = capture();
      expect(await gcCommand.run({ argv: ['--dry-run', '--json'], stdout: dry.stream, stderr: dry.stream })).toBe(0);
      const report = JSON.parse(dry.text()) as { dryRun: boolean; removed: Array<{ kind: string; id: string }> };
      expect(report.dryRun).toBe(true);
      expect(report.removed.map((r) => `${r.kind}:${r.id}`).sort()).toEqual(['session:s-gone', 'slot:qemu', 'vm:vm-left']);
      expect(existsSync(join(home, 'run', 'vm-left'))).toBe(true);
      expect(existsSync(deadSlot)).toBe(true);
      expect(await isRunning(vm)).toBe(true);

      const real = capture();
      expect(await gcCommand.run({ argv: [], stdout: real.stream, stderr: real.stream })).toBe(0);
      expect(real.text()).toContain('removed VM vm-left');
      expect(real.text()).toContain('removed session s-gone');
      expect(existsSync(deadSlot)).toBe(false);
      expect(existsSync(join(home, 'run', 'vm-left'))).toBe(false);
      expect(await isRunning(vm)).toBe(false);

      const again = capture();
      await gcCommand.run({ argv: [], stdout: again.stream, stderr: again.stream });
      expect(again.text()).toContain('Nothing to remove');
    } finally {
      if (previous === undefined) delete process.env.MACVM_HOME;
      else process.env.MACVM_HOME = previous;
    }
  });
});

function capture() {
  let text = '';
  const stream = { write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream;
  return { stream, text: () => text };
}
