import { readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, isRunning, isSameProcess } from '../util/process-identity.js';

import { homePaths } from '../vm/home.js';
import { runCleanupCommands } from '../vm/cleanup-commands.js';
import { readVmRecord, stagingOwner, type VmRecord } from '../vm/runtime-dir.js';
import { listSessions, readSession, removeSessionDir, sessionOwnerAlive, type SessionRecord } from './sessions.js';
import { sweepDeadSlots } from './slots.js';

/**
 * Garbage collection of what runner sessions leave behind: VM processes, clones (runtime
 * dirs), session dirs, slots. The reaper uses destroyLeftover() for one session's VMs; the
 * sweep at runner start and `macvm gc` use sweepDeadSessions() for every dead session.
 */

export interface GcOptions {
  /** Also remove VMs started with `macvm vm start` (detached) and leftovers of unknown sessions whatever their age. */
  all?: boolean;
  /** Say what would be removed, remove nothing. */
  dryRun?: boolean;
  /** MACVM_HOME override; default from the environment. */
  home?: string;
  /**
   * Runtime dirs whose session is not registered (e.g. a VM started from plain vitest) and whose
   * VM process is not running are removed only once older than this, since their creator may
   * be mid-way through writing them. Default 10 minutes.
   */
  graceMs?: number;
  /** Progress lines (one per removal). */
  log?: (line: string) => void;
}

export interface GcRemoval {
  kind: 'vm' | 'session' | 'slot' | 'ticket';
  id: string;
  /** Why it was judged dead. */
  reason: string;
  /** The VM process that was (or would be) stopped. */
  pid?: number;
  /** Cleanup commands that failed (the rest of the removal still happened). */
  errors?: string[];
}

export interface GcReport {
  dryRun: boolean;
  removed: GcRemoval[];
  /** Runtime dirs left alone, and why (live session, detached, too young). */
  kept: Array<{ kind: 'vm' | 'session'; id: string; reason: string }>;
}

const DEFAULT_GRACE_MS = 10 * 60_000;

/** Removes what dead sessions left (see GcOptions). Never touches a live session's VMs. */
export async function sweepDeadSessions(options: GcOptions = {}): Promise<GcReport> {
  const report: GcReport = { dryRun: Boolean(options.dryRun), removed: [], kept: [] };
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const sessions = new Map<string, SessionRecord | undefined>();
  const sessionOf = async (id: string) => {
    if (!sessions.has(id)) sessions.set(id, await readSession(id, options.home).catch(() => undefined));
    return sessions.get(id);
  };
  const liveSessions = new Set<string>();

  for (const { dir, id, record } of await runtimeDirs(options.home)) {
    const verdict = await judgeVm(dir, record, options, graceMs, sessionOf);
    if (verdict.keep) {
      report.kept.push({ kind: 'vm', id, reason: verdict.reason });
      if (record?.session && verdict.liveSession) liveSessions.add(record.session);
      continue;
    }
    const removal: GcRemoval = { kind: 'vm', id, reason: verdict.reason, pid: record?.pid };
    if (!options.dryRun) {
      const errors = await destroyLeftover(dir, record);
      if (errors.length) removal.errors = errors;
    }
    report.removed.push(removal);
    options.log?.(`${options.dryRun ? 'would remove' : 'removed'} VM ${id} (${verdict.reason})`);
  }

  for (const entry of await listSessions(options.home)) {
    if (liveSessions.has(entry.id)) {
      report.kept.push({ kind: 'session', id: entry.id, reason: 'has live VMs' });
      continue;
    }
    let reason: string | undefined;
    if (entry.record) {
      if (await sessionOwnerAlive(entry.record)) {
        report.kept.push({ kind: 'session', id: entry.id, reason: `runner pid ${entry.record.pid} is alive` });
        continue;
      }
      reason = `runner pid ${entry.record.pid} is gone`;
    } else if (options.all || Date.now() - entry.mtimeMs > graceMs) {
      reason = 'no session.json';
    } else {
      report.kept.push({ kind: 'session', id: entry.id, reason: 'no session.json yet (being created?)' });
      continue;
    }
    if (!options.dryRun) await removeSessionDir(entry.id, options.home);
    report.removed.push({ kind: 'session', id: entry.id, reason });
    options.log?.(`${options.dryRun ? 'would remove' : 'removed'} session ${entry.id} (${reason})`);
  }

  // A dry run lists the dead slots too: it must show everything the real run would remove.
  for (const slot of await sweepDeadSlots(options.home, { dryRun: options.dryRun })) {
    const holder = slot.holder ? `${slot.holder.suite}, pid ${slot.holder.pid}` : 'unreadable';
    report.removed.push({ kind: slot.kind, id: slot.provider, reason: `holder gone (${holder})`, pid: slot.holder?.pid });
    options.log?.(`${options.dryRun ? 'would remove' : 'removed'} a dead ${slot.provider} ${slot.kind} (${holder})`);
  }
  return report;
}

/** "1 VM, 2 stale slots": what a sweep removed, counted by kind. */
export function describeRemovals(removed: GcRemoval[]): string {
  const count = (kind: GcRemoval['kind'], noun: string) => {
    const n = removed.filter((r) => r.kind === kind).length;
    return n ? `${n} ${noun}${n === 1 ? '' : 's'}` : undefined;
  };
  return [count('vm', 'VM'), count('session', 'session'), count('slot', 'stale slot'), count('ticket', 'stale queue ticket')].filter(Boolean).join(', ');
}

/** A runtime dir being made (runtime-dir.ts) whose maker died before it was tagged. */
export function interruptedStaging(name: string): boolean {
  const maker = stagingOwner(name);
  return maker !== undefined && !isAlive(maker);
}

/**
 * What a session's sweep removes: its VMs that are not detached, and the runtime dirs its workers
 * were still tagging. A staging dir of one of the session's workers goes whatever its vm.json
 * says (it may be half-written) and whether or not its pid still answers (a killed worker its
 * parent has not reaped yet does); any other staging dir only once its maker is gone.
 */
export function sessionLeftovers<T extends { id: string; record: VmRecord | undefined }>(dirs: T[], session: string, workerPids: readonly number[]): T[] {
  const workers = new Set(workerPids);
  return dirs.filter((d) => {
    const maker = stagingOwner(d.id);
    if (maker !== undefined && workers.has(maker)) return true;
    return d.record ? d.record.session === session && !d.record.detached : interruptedStaging(d.id);
  });
}

type Verdict = { keep: true; reason: string; liveSession?: boolean } | { keep: false; reason: string };

async function judgeVm(
  dir: string,
  record: VmRecord | undefined,
  options: GcOptions,
  graceMs: number,
  sessionOf: (id: string) => Promise<SessionRecord | undefined>,
): Promise<Verdict> {
  const age = Date.now() - (await stat(dir).then((s) => s.mtimeMs, () => Date.now()));
  if (!record) {
    if (interruptedStaging(basename(dir))) return { keep: false, reason: `creation interrupted (pid ${stagingOwner(basename(dir))} is gone)` };
    if (options.all || age > graceMs) return { keep: false, reason: 'unreadable vm.json' };
    return { keep: true, reason: 'no vm.json yet (being created?)' };
  }
  if (record.detached) {
    return options.all ? { keep: false, reason: 'detached VM, removed with --all' } : { keep: true, reason: 'detached (macvm vm start); use --all or `macvm vm rm`' };
  }
  const session = record.session ? await sessionOf(record.session) : undefined;
  if (session) {
    if (await sessionOwnerAlive(session)) return { keep: true, reason: `session ${session.id} is alive (pid ${session.pid})`, liveSession: true };
    return { keep: false, reason: `session ${session.id} is dead (runner pid ${session.pid} is gone)` };
  }
  // Unregistered session (its runner died and its dir is gone, or a run without the registry):
  // the process that made the clone is its owner. Owner dead = the VM is an orphan.
  if (record.owner && !(await isSameProcess(record.owner.pid, record.owner.pidStartTime))) {
    return { keep: false, reason: `unknown session ${record.session ?? '?'} and its owner pid ${record.owner.pid} is gone` };
  }
  // An owner that lives, or an old record without one: a running VM process is left alone
  // (unless --all), since its owner may be a run that does not use the registry.
  const vmRunning = record.pid !== undefined && (await isSameProcess(record.pid, record.pidStartTime));
  if (options.all) return { keep: false, reason: `unknown session ${record.session ?? '?'}, removed with --all` };
  if (vmRunning) return { keep: true, reason: `unknown session ${record.session ?? '?'} but its ${record.owner ? `owner pid ${record.owner.pid} lives` : `VM process ${record.pid} runs`}; use --all` };
  if (age > graceMs) return { keep: false, reason: `unknown session ${record.session ?? '?'}, no VM process, older than ${Math.round(graceMs / 60_000)} min` };
  return { keep: true, reason: `unknown session ${record.session ?? '?'}, younger than the grace period` };
}

/**
 * Stops a leftover VM and deletes its clone: SIGTERM to its process (only if pid AND start
 * time still match, so a reused PID is never signalled), SIGKILL after `termMs`, then the
 * record's cleanup commands in order, then the runtime dir. Returns the errors of cleanup
 * steps that failed; the rest is done regardless.
 */
export async function destroyLeftover(dir: string, record: VmRecord | undefined, termMs = 2_000): Promise<string[]> {
  const errors: string[] = [];
  if (record?.pid !== undefined && (await isSameProcess(record.pid, record.pidStartTime))) {
    await stopProcess(record.pid, termMs);
  }
  errors.push(...(await runCleanupCommands(record)));
  await rm(dir, { recursive: true, force: true });
  return errors;
}

/** Every runtime dir under `home`'s run/ with its record (undefined when unreadable). */
export async function runtimeDirs(home?: string): Promise<Array<{ dir: string; id: string; record: VmRecord | undefined }>> {
  const root = homePaths(home).run;
  const names = await readdir(root).catch(() => [] as string[]);
  return Promise.all(names.map(async (id) => ({ dir: join(root, id), id, record: await readVmRecord(join(root, id)) })));
}

async function stopProcess(pid: number, termMs: number): Promise<void> {
  signal(pid, 'SIGTERM');
  if (await exitedWithin(pid, termMs)) return;
  signal(pid, 'SIGKILL');
  await exitedWithin(pid, 2_000);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone (ESRCH), or not ours to signal (EPERM): nothing more to do here.
  }
}

async function exitedWithin(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (await isRunning(pid)) {
    if (Date.now() >= end) return false;
    await sleep(50);
  }
  return true;
}
