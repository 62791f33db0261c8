import { mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Deadline } from '../shared/deadline.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { selfStartTime } from '../util/process-identity.js';
import { ensurePrivateDir, ensurePrivateHome, homePaths } from './home.js';

/**
 * Every clone has a private runtime dir, $MACVM_HOME/run/<vm-id>/, and in it `vm.json`:
 * the record the reaper and `macvm gc` use to find and remove what a dead session left.
 * Whoever creates a clone writes it first (before any process starts) and updates it
 * when the VM process starts, so there is never an untagged clone or VM.
 */
export interface VmRecord {
  id: string;
  /** The runner session that owns it; `vm start` from the CLI uses a session of its own. */
  session: string;
  provider: string;
  image: string;
  createdAt: string;
  /** The supervised VM process, once started. */
  pid?: number;
  /**
   * The VM process's start time as the OS reports it (Linux: /proc/<pid>/stat field 22),
   * so a reused PID is never killed by mistake.
   */
  pidStartTime?: string;
  /** Guest SSH endpoint once known. */
  ssh?: { host: string; port: number };
  /** Argv lists to run (in order) to clean up outside the runtime dir, e.g. ["tart","delete","macvm-ab12"]. */
  cleanup?: string[][];
  /**
   * The process that created the clone (a test worker, the CLI): while it lives, the VM has
   * an owner; once it is gone and the session is unknown, `macvm gc` removes the VM.
   */
  owner?: { pid: number; pidStartTime?: string };
  /** Set for VMs started with `macvm vm start`: the reaper leaves them alone; `vm rm` / `gc --all` remove them. */
  detached?: boolean;
  cpus?: number;
  memoryMiB?: number;
}

export const VM_RECORD_FILE = 'vm.json';

/** The record a provider writes when it makes a clone, before anything else exists: stamped now. */
export function newVmRecord(fields: Omit<VmRecord, 'createdAt' | 'detached' | 'owner'> & { detached?: boolean }): VmRecord {
  // `detached: false` is left out, so vm.json only says it for `macvm vm start`.
  return { ...fields, createdAt: new Date().toISOString(), owner: { pid: process.pid, pidStartTime: selfStartTime() }, detached: fields.detached || undefined };
}

/** Runtime dirs being made: `.staging-<pid>-…` under run/, renamed into place once tagged. */
export const STAGING_PREFIX = '.staging-';

/**
 * Creates the clone's runtime dir with its record already in it: the record is written in a
 * staging dir that is then renamed into place, so a process killed half-way never leaves an
 * untagged run/<id>/ (only a staging dir named after its pid, which gc removes once that pid is gone).
 */
export async function createTaggedRuntimeDir(record: VmRecord): Promise<string> {
  await ensurePrivateHome();
  const run = await ensurePrivateDir(homePaths().run);
  const staging = await mkdtemp(join(run, `${STAGING_PREFIX}${process.pid}-`));
  try {
    // A plain write: nobody reads the staging dir, and the rename below is what publishes it.
    await writeFile(join(staging, VM_RECORD_FILE), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
    const dir = homePaths().vm(record.id);
    await rename(staging, dir);
    return dir;
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/**
 * A local clone's runtime dir: tagged with its record before anything else exists (a crash from
 * here on leaves a dir the reaper and `macvm gc` recognise), then `fill` makes the clone's disk in
 * it as the deadline's 'clone' step. If that fails, the dir goes again before the error is thrown.
 */
export async function createCloneRuntimeDir(record: VmRecord, deadline: Deadline, fill: (dir: string, signal: AbortSignal) => Promise<void>): Promise<string> {
  const dir = await createTaggedRuntimeDir(record);
  try {
    await deadline.run('clone', (signal) => fill(dir, signal));
    return dir;
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Removes, at once, the runtime dirs this process was making (staging dirs) and, with
 * `ownedToo`, the non-detached clones it made: for the exit of a test worker whose runner died.
 * Such a worker may still be half-way through a clone when it exits, after the reaper's last
 * sweep; its VM processes die with it (parent-death signal), their dirs go here.
 */
export function removeOwnRuntimeDirsSync(options: { ownedToo: boolean; home?: string }): void {
  const run = homePaths(options.home).run;
  let names: string[];
  try {
    names = readdirSync(run);
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(run, name);
    let remove = name.startsWith(`${STAGING_PREFIX}${process.pid}-`);
    if (!remove && options.ownedToo && !name.startsWith('.')) {
      try {
        const record = JSON.parse(readFileSync(join(dir, VM_RECORD_FILE), 'utf8')) as VmRecord;
        remove = record.owner?.pid === process.pid && !record.detached;
      } catch {
        // not ours to judge: gc decides
      }
    }
    if (remove) rmSync(dir, { recursive: true, force: true });
  }
}

/** The pid of the process that was making a staging dir, from its name. */
export function stagingOwner(name: string): number | undefined {
  const match = /^\.staging-(\d+)-/.exec(name);
  return match ? Number(match[1]) : undefined;
}

export async function writeVmRecord(dir: string, record: VmRecord): Promise<void> {
  await writeFileAtomic(join(dir, VM_RECORD_FILE), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
}

export async function readVmRecord(dir: string): Promise<VmRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, VM_RECORD_FILE), 'utf8')) as VmRecord;
  } catch {
    return undefined;
  }
}

/** All runtime dirs with their records (a dir whose record is unreadable comes back with `record: undefined`). */
export async function listRuntimeDirs(): Promise<Array<{ dir: string; id: string; record: VmRecord | undefined }>> {
  const root = homePaths().run;
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  // Staging dirs (a clone being made) are not VMs yet; gc sweeps them.
  return Promise.all(
    names.filter((name) => !name.startsWith(STAGING_PREFIX)).map(async (id) => {
      const dir = join(root, id);
      return { dir, id, record: await readVmRecord(dir) };
    }),
  );
}
