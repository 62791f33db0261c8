import { randomBytes } from 'node:crypto';
import type { SessionInfo } from './types.js';

/**
 * The runner session every clone is tagged with. The runner (macvm test) creates it and
 * passes it to its workers in MACVM_SESSION_ID; code that starts VMs outside the runner
 * gets a session of its own process.
 */
let processSession: SessionInfo | undefined;

export function currentSession(env: NodeJS.ProcessEnv = process.env): SessionInfo {
  const fromRunner = env.MACVM_SESSION_ID;
  if (fromRunner) return { id: fromRunner, pid: Number(env.MACVM_SESSION_PID) || process.pid };
  processSession ??= newSession();
  return processSession;
}

export function newSession(): SessionInfo {
  return { id: `s-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`, pid: process.pid };
}
