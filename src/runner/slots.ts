import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, readdirSync, renameSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError } from '../errors.js';
import { isRunning, processStartTime } from '../util/process-identity.js';
import { ensurePrivateDir, homePaths } from '../vm/home.js';

/**
 * The slot broker: a host-wide limit of running VMs per provider, across processes (macOS
 * allows two macOS guests per host, whichever process starts them), first come first served.
 *
 * State lives in $MACVM_HOME/slots/<provider>/ and needs no daemon and no lock:
 * - `queue/<ticket>.json`: one per waiter. Tickets sort by arrival (ms clock, then a per-process
 *   counter, then pid), so the oldest live ticket is the head of the queue.
 * - `slot-<i>` for i < limit: one per holder, created with link(2), which fails if the name
 *   exists, so two processes can never hold the same slot, and the file is never seen half-written.
 *
 * Only the head of the queue takes a slot, then removes its ticket; so only one process at a
 * time creates slot files or reclaims the slots of dead holders (identity = pid + start time,
 * never a bare pid), and no two waiters race for the same slot. A waiter wakes when the slot
 * dir or the queue changes (fs.watch); its ~100 ms poll is only the fallback for what a watch
 * cannot see (a holder that died without removing its file).
 *
 * File operations are synchronous on purpose: they touch a few tiny files on a local disk
 * (microseconds each), while each async one is two thread hops, and on a loaded host every hop
 * can wait for a CPU. The hand-over (freed slot → next waiter holds it) is a dozen of them in a
 * row: async, it took 23 ms median (p95 290 ms) at load ≈ 10 on 2 cores; sync, 1.4 ms (p95 8 ms).
 */

export interface SlotHolder {
  /** The runner session (for messages and `macvm gc`). */
  session: string;
  /** The suite the slot is for, as shown to users. */
  suite: string;
  /** The process that holds the slot; when it dies, the slot is reclaimed. */
  pid: number;
}

export interface SlotHolderInfo extends SlotHolder {
  /** ISO time the slot was taken. */
  since: string;
}

export interface SlotWaitInfo {
  /** Live waiters ahead of this one (0 = next). */
  position: number;
  /** Who holds the slots now. */
  holders: SlotHolderInfo[];
  limit: number;
}

export interface AcquireSlotOptions {
  provider: string;
  /** Host-wide limit for this provider (config `slots`). */
  limit: number;
  holder: SlotHolder;
  /** How long to wait for a slot; 0 = take one only if one is free right now and nobody waits ahead. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called when waiting starts and whenever the position or the holders change. */
  onWait?: (info: SlotWaitInfo) => void;
  /** MACVM_HOME override (tests); default from the environment. */
  home?: string;
  /** Poll interval, ms (default 100). */
  pollMs?: number;
}

export interface SlotLease {
  provider: string;
  /** Which of the provider's slots (0-based). */
  index: number;
  holder: SlotHolderInfo;
  /**
   * Records the VM process the slot was taken for. The slot then stays taken while that
   * process runs, even if the holder dies first: a killed runner's VM lives until the
   * reaper stops it, and must not share the host with a newly booted one meanwhile.
   */
  trackVmProcess(pid: number): Promise<void>;
  /** Gives the slot back. Idempotent; never removes a slot someone else holds. */
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Record_ extends SlotHolderInfo {
  pidStartTime?: string;
  ticket: string;
  /** The VM process the slot is for, once booted (see SlotLease.trackVmProcess). */
  vmPid?: number;
  vmPidStartTime?: string;
}

const SLOT_PREFIX = 'slot-';
/** A slot or ticket file that cannot be read is left alone this long (a writer may be mid-way), then removed. */
const UNREADABLE_GRACE_MS = 10_000;
let ticketCounter = 0;

export async function acquireSlot(options: AcquireSlotOptions): Promise<SlotLease> {
  const { provider, limit, holder } = options;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `The ${provider} slot limit must be a positive integer, got ${String(limit)}.`, {
      hint: `Set slots.${provider} in macvm.config.ts (or MACVM_SLOTS_${provider.toUpperCase()}) to 1 or more.`,
    });
  }
  options.signal?.throwIfAborted();
  const dir = await slotDir(provider, options.home);
  const queue = await ensurePrivateDir(join(dir, 'queue'));
  const ticket = newTicket();
  const record: Record_ = { ...holder, since: new Date().toISOString(), pidStartTime: await processStartTime(holder.pid), ticket };
  const ticketPath = join(queue, `${ticket}.json`);
  // Written beside and renamed in, so nobody reads half a ticket. No fsync: tickets only
  // matter while their process lives, and a crash of the host takes the processes with it.
  const temp = join(queue, `.${ticket}.tmp`);
  writeFileSync(temp, JSON.stringify(record), { mode: 0o600 });
  renameSync(temp, ticketPath);

  const started = Date.now();
  const pollMs = options.pollMs ?? 100;
  let lastReported = '';
  // A freed slot (or a ticket ahead leaving the queue) wakes the waiter at once; polling stays
  // as the fallback for what a watch cannot see (a holder that died without removing its file).
  const changes = watchChanges([dir, queue]);
  try {
    for (;;) {
      const ahead = await liveTicketsBefore(queue, ticket);
      const slots = await readSlots(dir, ahead === 0);
      if (ahead === 0) {
        const index = firstFreeIndex(slots.taken, limit);
        if (index !== undefined && (await takeSlot(dir, index, record))) {
          return lease(provider, index, join(dir, `${SLOT_PREFIX}${index}`), record);
        }
      }
      const holders = slots.held.map((s) => publicInfo(s.record));
      if (options.timeoutMs === 0 || Date.now() - started >= options.timeoutMs) {
        throw slotTimeout(provider, limit, holders, ahead, options.timeoutMs);
      }
      const info: SlotWaitInfo = { position: ahead, holders, limit };
      const signature = JSON.stringify(info);
      if (signature !== lastReported) {
        lastReported = signature;
        try {
          options.onWait?.(info);
        } catch {
          // A progress callback must never break the queue.
        }
      }
      const remaining = options.timeoutMs - (Date.now() - started);
      await napUntilChange(changes, Math.max(1, Math.min(remaining, pollMs * (0.75 + Math.random() * 0.5))), options.signal);
    }
  } finally {
    changes.close();
    rmSync(ticketPath, { force: true });
  }
}

/** Sleeps `ms`, or less when `changes` reports one; a cancelled `signal` rejects as before. */
async function napUntilChange(changes: { next(): Promise<void> }, ms: number, signal: AbortSignal | undefined): Promise<void> {
  const woken = new AbortController();
  try {
    await Promise.race([sleep(ms, undefined, { signal: signal ? AbortSignal.any([woken.signal, signal]) : woken.signal }), changes.next()]);
  } finally {
    woken.abort();
  }
}

/** Resolves next() on the next change in any of `dirs` (or at once if one came since the last call). */
function watchChanges(dirs: string[]): { next(): Promise<void>; close(): void } {
  let pending = false;
  let wake: (() => void) | undefined;
  const onChange = () => {
    pending = true;
    wake?.();
  };
  const watchers = dirs.flatMap((dir) => {
    try {
      const watcher = watch(dir, onChange);
      watcher.on('error', () => {}); // the dir went away: polling carries on
      return [watcher];
    } catch {
      return [];
    }
  });
  return {
    next() {
      if (pending) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        wake = () => {
          pending = false;
          wake = undefined;
          resolve();
        };
      });
    },
    close() {
      for (const watcher of watchers) watcher.close();
      wake?.();
    },
  };
}

/** Who holds the provider's slots now (dead holders included until someone reclaims them). */
export async function listSlotHolders(provider: string, home?: string): Promise<SlotHolderInfo[]> {
  const dir = join(homePaths(home).slots, provider);
  return (await readSlots(dir, false)).held.map((s) => publicInfo(s.record));
}

/**
 * Removes slot files and queue tickets whose process is dead (for `macvm gc`). Safe while
 * runs are active: a dead holder's slot is free either way. Returns what it removed.
 */
export async function sweepDeadSlots(home?: string, options: { dryRun?: boolean } = {}): Promise<Array<{ provider: string; kind: 'slot' | 'ticket'; holder: SlotHolderInfo | undefined }>> {
  const root = homePaths(home).slots;
  const removed: Array<{ provider: string; kind: 'slot' | 'ticket'; holder: SlotHolderInfo | undefined }> = [];
  for (const provider of await namesIn(root)) {
    const dir = join(root, provider);
    for (const name of (await namesIn(dir)).filter((n) => n.startsWith(SLOT_PREFIX))) {
      const outcome = await checkFile(join(dir, name));
      if (outcome.dead) {
        if (!options.dryRun) rmSync(join(dir, name), { force: true });
        removed.push({ provider, kind: 'slot', holder: outcome.record && publicInfo(outcome.record) });
      }
    }
    const queue = join(dir, 'queue');
    for (const name of (await namesIn(queue)).filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
      const outcome = await checkFile(join(queue, name));
      if (outcome.dead) {
        if (!options.dryRun) rmSync(join(queue, name), { force: true });
        removed.push({ provider, kind: 'ticket', holder: outcome.record && publicInfo(outcome.record) });
      }
    }
  }
  return removed;
}

async function slotDir(provider: string, home?: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(provider)) throw new MacvmError('MACVM_BAD_ARGUMENT', `"${provider}" is not a provider name.`);
  await ensurePrivateDir(homePaths(home).slots);
  return ensurePrivateDir(join(homePaths(home).slots, provider));
}

function newTicket(): string {
  ticketCounter = (ticketCounter + 1) % 1_000_000;
  return `${String(Date.now()).padStart(15, '0')}-${String(ticketCounter).padStart(6, '0')}-${String(process.pid).padStart(10, '0')}-${randomBytes(2).toString('hex')}`;
}

/** Live tickets that sort before ours; dead ones are removed on the way. */
async function liveTicketsBefore(queue: string, ticket: string): Promise<number> {
  const earlier = (await namesIn(queue)).filter((n) => n.endsWith('.json') && !n.startsWith('.') && n.slice(0, -5) < ticket);
  let live = 0;
  for (const name of earlier) {
    const outcome = await checkFile(join(queue, name));
    if (outcome.dead) rmSync(join(queue, name), { force: true });
    else if (!outcome.gone) live++;
  }
  return live;
}

interface HeldSlot {
  index: number;
  record: Record_;
}

/**
 * The slots in use. When `reclaim` (only the head of the queue passes it), slots of dead
 * holders are removed so they can be taken again.
 */
async function readSlots(dir: string, reclaim: boolean): Promise<{ held: HeldSlot[]; taken: Set<number> }> {
  const held: HeldSlot[] = [];
  const taken = new Set<number>();
  for (const name of (await namesIn(dir)).filter((n) => n.startsWith(SLOT_PREFIX))) {
    const index = Number(name.slice(SLOT_PREFIX.length));
    if (!Number.isInteger(index)) continue;
    const outcome = await checkFile(join(dir, name));
    if (outcome.gone) continue;
    if (outcome.dead && reclaim) {
      rmSync(join(dir, name), { force: true });
      continue;
    }
    taken.add(index);
    if (outcome.record && !outcome.dead) held.push({ index, record: outcome.record });
  }
  held.sort((a, b) => a.index - b.index);
  return { held, taken };
}

function firstFreeIndex(taken: Set<number>, limit: number): number | undefined {
  // Slots beyond this process's limit (another run configured more) still count as in use.
  if (taken.size >= limit) return undefined;
  for (let i = 0; i < limit; i++) if (!taken.has(i)) return i;
  return undefined;
}

/** Creates slot-<index> with our record in one step (link fails if the name exists). */
async function takeSlot(dir: string, index: number, record: Record_): Promise<boolean> {
  const temp = join(dir, `.take-${record.ticket}.tmp`);
  writeFileSync(temp, JSON.stringify({ ...record, since: new Date().toISOString() }), { mode: 0o600 });
  try {
    linkSync(temp, join(dir, `${SLOT_PREFIX}${index}`));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
}

function lease(provider: string, index: number, path: string, record: Record_): SlotLease {
  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= (async () => {
      // Defensive: remove the file only if it is still ours.
      const current = await readRecord(path);
      if (current?.ticket === record.ticket) rmSync(path, { force: true });
    })());
  const trackVmProcess = async (pid: number) => {
    if (released) return;
    const tracked: Record_ = { ...record, vmPid: pid, vmPidStartTime: await processStartTime(pid) };
    // Replaced whole (rename), so readers see the old record or the new one, never half.
    const temp = join(dirname(path), `.track-${record.ticket}.tmp`);
    writeFileSync(temp, JSON.stringify(tracked), { mode: 0o600 });
    if ((await readRecord(path))?.ticket === record.ticket) renameSync(temp, path);
    else rmSync(temp, { force: true });
  };
  return { provider, index, holder: publicInfo(record), trackVmProcess, release, [Symbol.asyncDispose]: release };
}

const liveCache = new Map<string, number>();
const LIVE_CACHE_MS = 2_000;

/** Reads a slot or ticket file and decides whether its process is dead (pid + start time). */
async function checkFile(path: string): Promise<{ gone?: boolean; dead?: boolean; record?: Record_ }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { gone: true };
  }
  let record: Record_ | undefined;
  try {
    record = JSON.parse(text) as Record_;
  } catch {
    record = undefined;
  }
  if (!record || typeof record.pid !== 'number') {
    let age = 0;
    try {
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      // gone meanwhile
    }
    return { dead: age > UNREADABLE_GRACE_MS };
  }
  return { dead: !(await holderAlive(record)), record };
}

/** A slot is in use while its holder lives, or while the VM it started still runs. */
async function holderAlive(record: Record_): Promise<boolean> {
  if (await sameProcess(record.pid, record.pidStartTime)) return true;
  return typeof record.vmPid === 'number' && (await sameProcess(record.vmPid, record.vmPidStartTime));
}

async function sameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!(await isRunning(pid))) return false;
  if (startTime === undefined) return true;
  // Start times cost a `ps` on macOS; a pid that is alive and matched recently is trusted a while.
  const key = `${pid}:${startTime}`;
  const checked = liveCache.get(key);
  if (checked !== undefined && Date.now() - checked < LIVE_CACHE_MS) return true;
  const same = (await processStartTime(pid)) === startTime;
  if (same) liveCache.set(key, Date.now());
  else liveCache.delete(key);
  return same;
}

async function readRecord(path: string): Promise<Record_ | undefined> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record_;
  } catch {
    return undefined;
  }
}

async function namesIn(dir: string): Promise<string[]> {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function publicInfo(record: Record_): SlotHolderInfo {
  return { session: record.session, suite: record.suite, pid: record.pid, since: record.since };
}

/** "suite A (pid 123), suite B (pid 456)" */
export function describeHolders(holders: SlotHolderInfo[]): string {
  return holders.length === 0 ? 'none' : holders.map((h) => `${h.suite} (pid ${h.pid})`).join(', ');
}

function slotTimeout(provider: string, limit: number, holders: SlotHolderInfo[], ahead: number, timeoutMs: number): MacvmError {
  const waited = timeoutMs === 0 ? 'No' : `Waited ${formatMs(timeoutMs)} and no`;
  return new MacvmError(
    'MACVM_SLOT_TIMEOUT',
    `${waited} ${provider} slot is free: ${holders.length}/${limit} in use by ${describeHolders(holders)}${ahead > 0 ? `; ${ahead} waiting ahead` : ''}.`,
    {
      hint: `Wait for those runs to finish, raise timeouts.slot, or raise slots.${provider} (MACVM_SLOTS_${provider.toUpperCase()}) if the host can take more VMs. \`macvm gc\` removes what dead runs left.`,
      details: { provider, limit, holders, ahead, timeoutMs },
    },
  );
}

function formatMs(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`;
}
