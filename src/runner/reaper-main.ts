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
import { destroyLeftover, runtimeDirs } from './gc.js';
import { readSession, removeSessionDir, sessionDir, sessionOwnerAlive } from './sessions.js';

interface ReaperArgs {
  session: string;
  home: string;
  socket: string;
  idleMs: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as ReaperArgs;
const logFile = join(sessionDir(args.session, args.home), 'reaper.log');
const log = (line: string) => appendFile(logFile, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 }).catch(() => {});

let connection: Socket | undefined;
let sweeping: Promise<void> | undefined;

/** Stops and deletes the session's VMs, then the session dir; exits the process. */
function sweepAndExit(why: string, reply?: Socket): Promise<void> {
  sweeping ??= (async () => {
    await log(`sweeping session ${args.session}: ${why}`);
    const mine = (await runtimeDirs(args.home)).filter((d) => d.record?.session === args.session && !d.record.detached);
    const results = await Promise.all(
      mine.map(async ({ dir, id, record }) => {
        const errors = await destroyLeftover(dir, record).catch((error: unknown) => [String(error)]);
        await log(`removed VM ${id}${record?.pid ? ` (pid ${record.pid})` : ''}${errors.length ? `; cleanup errors: ${errors.join('; ')}` : ''}`);
        return errors.length;
      }),
    );
    server.close();
    if (reply && !reply.destroyed) await new Promise<void>((done) => reply.end(`done ${mine.length}\n`, () => done()));
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
