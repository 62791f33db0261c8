/**
 * The reaper process (after Testcontainers' Ryuk), started detached by startReaper() in
 * ./reaper.ts: `node reaper-main.js '<json: { session, home, socket, idleMs }>'`.
 *
 * It listens on the session's unix socket; the runner connects and keeps the connection open.
 * When the connection drops (the runner exited, crashed or was SIGKILLed) or the runner says
 * "bye", it stops every VM of the session that is not detached, deletes their clones and the
 * session dir, and exits. If no runner connects within `idleMs`, it exits, sweeping first
 * only if the session's runner is already dead.
 */
import { appendFile, chmod, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isSameProcess } from '../util/process-identity.js';
import { destroyLeftover, runtimeDirs, sessionLeftovers } from './gc.js';
import { listWorkers, type WorkerRecord } from './worker-watch.js';
import { readSession, removeSessionDir, sessionDir, sessionOwnerAlive } from './sessions.js';
import { sweepDeadSlots } from './slots.js';

interface ReaperArgs {
  session: string;
  home: string;
  socket: string;
  idleMs: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as ReaperArgs;
const logFile = join(sessionDir(args.session, args.home), 'reaper.log');
const log = (line: string) => appendFile(logFile, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 }).catch(() => {});

const WORKER_GRACE_MS = 5_000;

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

let connection: Socket | undefined;
let sweeping: Promise<void> | undefined;

/** Stops and deletes the session's VMs; returns how many, and how many cleanups failed. */
async function sweepOnce(): Promise<{ removed: number; failed: number }> {
  const workers = listWorkers(args.session, args.home).map((w) => w.pid);
  const mine = sessionLeftovers(await runtimeDirs(args.home), args.session, workers);
  const results = await Promise.all(
    mine.map(async ({ dir, id, record }) => {
      const errors = await destroyLeftover(dir, record).catch((error: unknown) => [String(error)]);
      await log(`removed VM ${id}${record?.pid ? ` (pid ${record.pid})` : ''}${errors.length ? `; cleanup errors: ${errors.join('; ')}` : ''}`);
      return errors.length;
    }),
  );
  return { removed: mine.length, failed: results.filter((n) => n > 0).length };
}

/** The session's test workers still running (they registered in the session dir). */
async function liveWorkers(): Promise<WorkerRecord[]> {
  const live: WorkerRecord[] = [];
  for (const worker of listWorkers(args.session, args.home)) if (await isSameProcess(worker.pid, worker.pidStartTime)) live.push(worker);
  return live;
}

/**
 * Stops and deletes the session's VMs, then the session dir; exits the process. When the
 * runner died, its workers may outlive it a moment (they notice and stop by themselves), and
 * a worker that was waiting for a slot or booting could still start a VM: so the sweep repeats
 * until no worker of the session runs, and a worker still running after WORKER_GRACE_MS is killed.
 */
function sweepAndExit(why: string, reply?: Socket): Promise<void> {
  sweeping ??= (async () => {
    await log(`sweeping session ${args.session}: ${why}`);
    let { removed, failed } = await sweepOnce();
    // Also after a clean goodbye: on Ctrl-C the runner says goodbye while the workers it
    // stopped may still be exiting, and one killed while tagging a clone leaves a staging dir
    // that only a sweep after its death can remove.
    {
      const started = Date.now();
      let killed = false;
      for (let live = await liveWorkers(); live.length > 0; live = await liveWorkers()) {
        if (!killed && Date.now() - started > WORKER_GRACE_MS) {
          killed = true;
          await log(`workers ${live.map((w) => w.pid).join(', ')} still run ${WORKER_GRACE_MS} ms after the runner: killing them`);
          for (const worker of live) signal(worker.pid, 'SIGKILL');
        }
        if (Date.now() - started > WORKER_GRACE_MS + 10_000) break;
        await sleep(200);
        const again = await sweepOnce();
        removed += again.removed;
        failed = again.failed;
      }
      // The last worker may have started a VM as it went.
      const last = await sweepOnce();
      removed += last.removed;
      failed = last.failed;
    }
    // The slots and queue tickets of the session's dead workers (and VMs) are freed now, not
    // left for the next run to reclaim.
    for (const slot of await sweepDeadSlots(args.home).catch(() => [])) await log(`freed a dead ${slot.provider} ${slot.kind} (pid ${slot.holder?.pid ?? '?'})`);
    server.close();
    const results = [failed];
    if (reply && !reply.destroyed) await new Promise<void>((done) => reply.end(`done ${removed}\n`, () => done()));
    // A failed cleanup command leaves the session dir (with this log) for `macvm gc` to retry.
    if (results.every((n) => n === 0)) await removeSessionDir(args.session, args.home).catch(() => {});
    else await rm(args.socket, { force: true });
    process.exit(0);
  })();
  return sweeping;
}

const server = createServer((socket) => {
  if (connection) {
    socket.destroy();
    return;
  }
  connection = socket;
  clearTimeout(idleTimer);
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.split('\n').some((line) => line.trim() === 'bye')) void sweepAndExit('the runner said goodbye', socket);
  });
  socket.on('error', () => {});
  socket.on('close', () => void sweepAndExit('the runner connection dropped'));
});

const idleTimer = setTimeout(async () => {
  if (connection) return;
  const session = await readSession(args.session, args.home);
  if (session && !(await sessionOwnerAlive(session))) await sweepAndExit(`no runner connected within ${args.idleMs} ms and runner pid ${session.pid} is gone`);
  await log(`no runner connected within ${args.idleMs} ms; exiting`);
  server.close();
  await rm(args.socket, { force: true });
  process.exit(0);
}, args.idleMs);

await rm(args.socket, { force: true });
server.listen(args.socket, () => {
  void chmod(args.socket, 0o600).catch(() => {});
  void log(`listening for session ${args.session} (pid ${process.pid})`);
});
server.on('error', async (error) => {
  await log(`cannot listen on ${args.socket}: ${error.message}`);
  process.exit(1);
});
