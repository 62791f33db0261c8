import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MacvmError } from '../../src/errors.js';
import { acquireSlot, listSlotHolders, sweepDeadSlots, type SlotWaitInfo } from '../../src/runner/slots.js';

const holderScript = resolve('test/support/slot-holder.ts');
let home: string;
let logFile: string;
const children: ChildProcess[] = [];

interface Event {
  t: number;
  suite: string;
  pid: number;
  event: 'waiting' | 'acquired' | 'releasing';
  index?: number;
  holders?: string[];
}

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'macvm-slots-'));
  logFile = join(home, 'events.jsonl');
  await writeFile(logFile, '');
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(home, { recursive: true, force: true });
});

function startHolder(suite: string, holdMs: number, limit: number): ChildProcess {
  const options = { home, provider: 'qemu', limit, suite, holdMs, log: logFile };
  const child = spawn(process.execPath, ['--import', 'tsx', holderScript, JSON.stringify(options)], { stdio: ['pipe', 'ignore', 'inherit'] });
  children.push(child);
  return child;
}

async function events(): Promise<Event[]> {
  return (await readFile(logFile, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Event);
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.exitCode) : new Promise<number | null>((done) => child.once('exit', (code) => done(code)));

describe('slot broker across processes', () => {
  it('six holder processes against a limit of 2: never more than 2 at once, all finish, first come first served', async () => {
    const suites = ['A', 'B', 'C', 'D', 'E', 'F'];
    const holders = suites.map((suite) => startHolder(suite, 300 + Math.floor(Math.random() * 500), 2));

    // Sample the slot files from outside while they run, independently of the processes' own log.
    let maxSampled = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const names = await readdir(join(home, 'slots', 'qemu')).catch(() => [] as string[]);
        maxSampled = Math.max(maxSampled, names.filter((n) => n.startsWith('slot-')).length);
        await sleep(10);
      }
    })();

    // Let them arrive one at a time, in suite order: each enters the queue before the next is told to go.
    for (const [i, child] of holders.entries()) {
      child.stdin!.write('go\n');
      await until(`${suites[i]} to queue`, async () => (await events()).some((e) => e.suite === suites[i] && (e.event === 'waiting' || e.event === 'acquired')));
    }
    const codes = await Promise.all(holders.map(exited));
    sampling = false;
    await sampler;
    expect(codes).toEqual([0, 0, 0, 0, 0, 0]);

    const log = await events();
    // Every suite took a slot and gave it back.
    expect(log.filter((e) => e.event === 'acquired').map((e) => e.suite).sort()).toEqual(suites);
    expect(log.filter((e) => e.event === 'releasing').map((e) => e.suite).sort()).toEqual(suites);
    // Someone had to wait, or this test proved nothing about the queue.
    expect(log.some((e) => e.event === 'waiting')).toBe(true);

    // Concurrency from the holders' own timestamps (a release sorts before an acquire at the same instant).
    let inUse = 0;
    let maxInUse = 0;
    const timeline = log.filter((e) => e.event !== 'waiting').sort((a, b) => a.t - b.t || (a.event === 'releasing' ? -1 : 1));
    for (const e of timeline) {
      inUse += e.event === 'acquired' ? 1 : -1;
      maxInUse = Math.max(maxInUse, inUse);
    }
    expect(maxInUse).toBe(2);
    expect(maxSampled).toBeGreaterThan(0);
    expect(maxSampled).toBeLessThanOrEqual(2);

    // FIFO: slots were granted in order of arrival.
    expect(log.filter((e) => e.event === 'acquired').sort((a, b) => a.t - b.t).map((e) => e.suite)).toEqual(suites);
    // Nothing is left behind.
    expect((await readdir(join(home, 'slots', 'qemu'))).filter((n) => n !== 'queue')).toEqual([]);
    expect(await readdir(join(home, 'slots', 'qemu', 'queue'))).toEqual([]);
  });

  it('reclaims the slot of a holder that was SIGKILLed, and tells the waiter who holds it', async () => {
    const holder = startHolder('suite A', -1, 1);
    holder.stdin!.write('go\n');
    await until('A to hold the slot', async () => (await events()).some((e) => e.event === 'acquired'));

    const waits: SlotWaitInfo[] = [];
    const waiting = acquireSlot({
      provider: 'qemu',
      limit: 1,
      holder: { session: 'test', suite: 'suite B', pid: process.pid },
      timeoutMs: 30_000,
      home,
      pollMs: 50,
      onWait: (info) => waits.push(info),
    });
    await until('B to report waiting', () => waits.length > 0 || undefined);
    expect(waits[0]).toMatchObject({ position: 0, limit: 1, holders: [{ suite: 'suite A', pid: holder.pid, session: 'slot-test' }] });
    expect(existsSync(join(home, 'slots', 'qemu', 'slot-0'))).toBe(true);

    holder.kill('SIGKILL');
    await exited(holder);
    const lease = await waiting;
    expect(lease.index).toBe(0);
    expect(lease.holder).toMatchObject({ suite: 'suite B', pid: process.pid });
    expect(await listSlotHolders('qemu', home)).toMatchObject([{ suite: 'suite B', pid: process.pid }]);
    await lease.release();
    await lease.release(); // idempotent
    expect(await listSlotHolders('qemu', home)).toEqual([]);
  });

  it('keeps a dead holder\'s slot taken while the VM process it tracked still runs', async () => {
    const sleeper = () => {
      const child = spawn('sleep', ['600'], { stdio: 'ignore' });
      children.push(child);
      return child;
    };
    const runner = sleeper();
    const vmProcess = sleeper();
    const lease = await acquireSlot({ provider: 'qemu', limit: 1, holder: { session: 't', suite: 'killed suite', pid: runner.pid! }, timeoutMs: 0, home });
    await lease.trackVmProcess(vmProcess.pid!);
    const request = { provider: 'qemu', limit: 1, holder: { session: 't', suite: 'next suite', pid: process.pid }, timeoutMs: 0, home };

    // The runner dies; the reaper has not stopped its VM yet.
    runner.kill('SIGKILL');
    await exited(runner);
    const refused = await acquireSlot(request).catch((e: unknown) => e);
    expect((refused as MacvmError).code).toBe('MACVM_SLOT_TIMEOUT');
    expect((refused as MacvmError).message).toContain(`in use by killed suite (pid ${runner.pid})`);
    expect(await sweepDeadSlots(home)).toEqual([]);

    // Once the VM is gone too, the slot is free.
    vmProcess.kill('SIGKILL');
    await exited(vmProcess);
    const next = await acquireSlot(request);
    expect(next.index).toBe(0);
    await next.release();
  });

  it('times out naming who holds the slots; with timeout 0 it fails at once', async () => {
    const holder = startHolder('suite A', -1, 1);
    holder.stdin!.write('go\n');
    await until('A to hold the slot', async () => (await events()).some((e) => e.event === 'acquired'));
    const request = { provider: 'qemu', limit: 1, holder: { session: 'test', suite: 'suite B', pid: process.pid }, home, pollMs: 50 };

    const error = await acquireSlot({ ...request, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MacvmError);
    expect((error as MacvmError).code).toBe('MACVM_SLOT_TIMEOUT');
    expect((error as MacvmError).message).toContain(`1/1 in use by suite A (pid ${holder.pid})`);

    const now = await acquireSlot({ ...request, timeoutMs: 0 }).catch((e: unknown) => e);
    expect((now as MacvmError).code).toBe('MACVM_SLOT_TIMEOUT');
    expect((now as MacvmError).message).toMatch(/^No qemu slot is free/);
    // A failed request leaves no ticket behind to block later ones.
    expect(await readdir(join(home, 'slots', 'qemu', 'queue'))).toEqual([]);

    // gc-style sweep: nothing to remove while A lives; its slot once A is dead.
    expect(await sweepDeadSlots(home)).toEqual([]);
    holder.kill('SIGKILL');
    await exited(holder);
    expect(await sweepDeadSlots(home)).toMatchObject([{ provider: 'qemu', kind: 'slot', holder: { suite: 'suite A' } }]);
  });

  it('stops waiting when aborted and leaves no ticket', async () => {
    const first = await acquireSlot({ provider: 'qemu', limit: 1, holder: { session: 't', suite: 'one', pid: process.pid }, timeoutMs: 0, home });
    const controller = new AbortController();
    const waiting = acquireSlot({ provider: 'qemu', limit: 1, holder: { session: 't', suite: 'two', pid: process.pid }, timeoutMs: 30_000, home, signal: controller.signal, pollMs: 50 });
    await sleep(150);
    controller.abort();
    await expect(waiting).rejects.toThrow(/abort/i);
    expect(await readdir(join(home, 'slots', 'qemu', 'queue'))).toEqual([]);
    await first.release();
  });

  it('wakes a waiter when the slot is freed, without waiting out its poll interval', async () => {
    const first = await acquireSlot({ provider: 'qemu', limit: 1, holder: { session: 't', suite: 'one', pid: process.pid }, timeoutMs: 0, home });
    // A poll interval far longer than the test: only the wake-up can hand the slot over in time.
    const waiting = acquireSlot({ provider: 'qemu', limit: 1, holder: { session: 't', suite: 'two', pid: process.pid }, timeoutMs: 120_000, home, pollMs: 600_000 });
    await until('the waiter to queue', async () => ((await readdir(join(home, 'slots', 'qemu', 'queue'))).length > 0 ? true : undefined));
    await sleep(100); // it is asleep now
    await first.release();
    const handedOver = await Promise.race([waiting.then((lease) => lease), sleep(20_000).then(() => undefined)]);
    expect(handedOver, 'the waiter was not woken when the slot was freed').toBeDefined();
    await handedOver!.release();
  });
});
