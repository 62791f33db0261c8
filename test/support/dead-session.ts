import { spawn } from 'node:child_process';
import { registerSession } from '../../src/runner/sessions.js';
import type { SessionInfo } from '../../src/vm/types.js';

/** The pid of a process that has exited: an owner that is certainly gone. */
export async function deadPid(): Promise<number> {
  const gone = spawn('true');
  const pid = gone.pid!;
  await new Promise((done) => gone.once('exit', done));
  return pid;
}

/**
 * A runner session registered under MACVM_HOME (or `home`) whose runner has died: what a
 * `macvm test` killed with SIGKILL leaves behind, for `macvm gc` to sweep.
 */
export async function registerDeadSession(id: string, home?: string): Promise<SessionInfo> {
  const session = { id, pid: await deadPid() };
  await registerSession(session, { home, cwd: '/' });
  return session;
}
