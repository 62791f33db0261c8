import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { isSameProcess, processStartTime } from '../util/process-identity.js';
import { ensurePrivateDir, homePaths } from '../vm/home.js';
import type { SessionInfo } from '../vm/types.js';

/**
 * The session registry: $MACVM_HOME/sessions/<id>/session.json says which process owns a
 * runner session, so `macvm gc` and the sweep at runner start can tell a dead session's
 * leftovers from a live one's. The dir (0700) also holds the reaper's socket.
 */
export interface SessionRecord {
  id: string;
  /** The runner process. */
  pid: number;
  /** Its start time as the OS reports it: with pid, the identity that survives PID reuse. */
  pidStartTime?: string;
  startedAt: string;
  cwd: string;
}

export const SESSION_FILE = 'session.json';
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function sessionDir(id: string, home?: string): string {
  if (!SESSION_ID.test(id)) throw new MacvmError('MACVM_BAD_ARGUMENT', `"${id}" is not a valid session id (letters, digits, ".", "_", "-").`);
  return join(homePaths(home).sessions, id);
}

/** Writes session.json for `session` (owner = session.pid) and returns the session dir. */
export async function registerSession(session: SessionInfo, options: { home?: string; cwd?: string } = {}): Promise<{ dir: string; record: SessionRecord }> {
  const dir = sessionDir(session.id, options.home);
  await ensurePrivateDir(homePaths(options.home).sessions);
  await ensurePrivateDir(dir);
  const record: SessionRecord = {
    id: session.id,
    pid: session.pid,
    pidStartTime: await processStartTime(session.pid),
    startedAt: new Date().toISOString(),
    cwd: options.cwd ?? process.cwd(),
  };
  await writeFileAtomic(join(dir, SESSION_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  return { dir, record };
}

export async function readSession(id: string, home?: string): Promise<SessionRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(sessionDir(id, home), SESSION_FILE), 'utf8')) as SessionRecord;
  } catch {
    return undefined;
  }
}

export interface SessionEntry {
  id: string;
  dir: string;
  record: SessionRecord | undefined;
  /** Modification time of the dir, ms since the epoch (for the grace period of unreadable ones). */
  mtimeMs: number;
}

export async function listSessions(home?: string): Promise<SessionEntry[]> {
  const root = homePaths(home).sessions;
  let names: string[];
  try {
    names = (await readdir(root)).filter((name) => SESSION_ID.test(name));
  } catch {
    return [];
  }
  const entries = await Promise.all(
    names.map(async (id) => {
      const dir = join(root, id);
      const mtimeMs = await stat(dir).then((s) => s.mtimeMs, () => undefined);
      return mtimeMs === undefined ? undefined : { id, dir, record: await readSession(id, home), mtimeMs };
    }),
  );
  return entries.filter((e): e is SessionEntry => e !== undefined);
}

/** True while the process that registered the session is still that process. */
export async function sessionOwnerAlive(record: SessionRecord): Promise<boolean> {
  return isSameProcess(record.pid, record.pidStartTime);
}

export async function removeSessionDir(id: string, home?: string): Promise<void> {
  await rm(sessionDir(id, home), { recursive: true, force: true });
}
