import { spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError } from '../errors.js';
import { ensurePrivateDir, homePaths, macvmHome } from '../vm/home.js';
import type { SessionInfo } from '../vm/types.js';
import { sessionDir } from './sessions.js';
import { siblingEntry } from '../util/sibling-entry.js';

/**
 * The runner side of the reaper (after Testcontainers' Ryuk). startReaper() spawns a detached
 * watchdog (./reaper-main) that outlives this process, and holds a unix-socket connection to
 * it. When that connection drops, whatever the reason (even SIGKILL, where no exit handler
 * runs), the watchdog stops the session's VMs and deletes their clones. The socket is unref'd,
 * so it never keeps the runner alive.
 *
 * Call registerSession() (./sessions.ts) first, so `macvm gc` can tell the session is alive.
 */
export interface Reaper {
  /** The watchdog process. */
  pid: number;
  socketPath: string;
  /**
   * A clean goodbye: the watchdog sweeps whatever VMs of the session are left (normally none;
   * the runner disposed them), removes the session dir and exits. Resolves when it has.
   */
  stop(): Promise<void>;
}

export interface StartReaperOptions {
  /** MACVM_HOME override; default from the environment. */
  home?: string;
  /** The watchdog exits if no runner connects within this (default 30 s). */
  idleTimeoutMs?: number;
  /** How long to wait for the watchdog to listen (default 15 s: tsx start-up on a busy host). */
  connectTimeoutMs?: number;
}

/** Unix socket paths are limited to 104 bytes on macOS (108 on Linux), including the NUL. */
const MAX_SOCKET_PATH = 103;

export async function startReaper(session: SessionInfo, options: StartReaperOptions = {}): Promise<Reaper> {
  const home = options.home ?? macvmHome();
  await ensurePrivateDir(homePaths(home).sessions);
  const dir = await ensurePrivateDir(sessionDir(session.id, home));
  const socketPath = join(dir, 'reaper.sock');
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new MacvmError('MACVM_REAPER_FAILED', `The reaper's socket path is too long for a unix socket (${Buffer.byteLength(socketPath)} bytes): ${socketPath}`, {
      hint: 'Set MACVM_HOME to a shorter path, e.g. ~/.macvm.',
    });
  }
  const { file, nodeArgs } = siblingEntry(import.meta.url, 'reaper-main');
  const argument = JSON.stringify({ session: session.id, home, socket: socketPath, idleMs: options.idleTimeoutMs ?? 30_000 });
  const child = spawn(process.execPath, [...nodeArgs, file, argument], { detached: true, stdio: 'ignore', cwd: dir });
  let spawnError: Error | undefined;
  let exitCode: number | null | undefined;
  child.once('error', (error) => (spawnError = error));
  child.once('exit', (code) => (exitCode = code));
  child.unref();

  const deadline = Date.now() + (options.connectTimeoutMs ?? 15_000);
  let socket: Socket | undefined;
  while (!socket) {
    if (spawnError || exitCode !== undefined || Date.now() > deadline) {
      if (exitCode === undefined && child.pid) process.kill(child.pid, 'SIGKILL');
      throw new MacvmError('MACVM_REAPER_FAILED', `The reaper for session ${session.id} did not start: ${spawnError?.message ?? (exitCode !== undefined ? `it exited with code ${exitCode}` : 'its socket never answered')}.`, {
        hint: `Its log, if any, is ${join(dir, 'reaper.log')}. Without a reaper a killed run could leave VMs behind; \`macvm gc\` removes them.`,
        details: { session: session.id, socketPath },
      });
    }
    socket = await connect(socketPath).catch(() => undefined);
    if (!socket) await sleep(50);
  }
  const connection = socket;
  connection.on('error', () => {});
  connection.unref();
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid!,
    socketPath,
    stop: () =>
      (stopping ??= new Promise<void>((resolve) => {
        if (connection.destroyed) return resolve();
        connection.ref();
        const timer = setTimeout(() => finish(), 15_000);
        const finish = () => {
          clearTimeout(timer);
          connection.destroy();
          resolve();
        };
        connection.on('close', finish);
        connection.on('data', (chunk) => String(chunk).includes('done') && finish());
        connection.write('bye\n');
      })),
  };
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
