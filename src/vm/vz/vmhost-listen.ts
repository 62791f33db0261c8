import { chmodSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { VzAddon } from './addon.js';
import { connectPeer, VmOwner, type VmhostLog, type VmhostServer } from './vmhost-server.js';

export interface ListenOptions {
  /**
   * A vmhost that has no VM and no client for this long exits: its booting process died
   * before it asked for a VM, and nobody else ever will.
   */
  idleExitMs?: number;
}

/**
 * Listen mode (a detached VM, `macvm vm start`): the same line protocol as stdio mode, served
 * on a unix socket in the clone's runtime dir, to any number of clients one after another or
 * at once. A client disconnecting does not touch the VM. The VM — and with it this vmhost —
 * ends on the `stop` command, when the guest shuts down or the VM fails, or on shutdown()
 * (SIGTERM/SIGINT/SIGHUP in vmhost-main). Then the socket is removed and `done` resolves.
 */
export async function listenVmhost(addon: VzAddon, socketPath: string, log: VmhostLog = () => {}, options: ListenOptions = {}): Promise<VmhostServer> {
  const owner = new VmOwner(addon, log);
  const sockets = new Set<Socket>();
  const idleExitMs = options.idleExitMs ?? 60_000;
  let idleTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    closing ??= (async () => {
      clearTimeout(idleTimer);
      await owner.shutdown(reason);
      server.close();
      // end() lets replies and the last events already written reach the clients first.
      await Promise.all([...sockets].map((socket) => endSocket(socket, 2_000)));
      rmSync(socketPath, { force: true });
      log('vmhost: socket closed');
    })();
    return closing;
  };

  const watchIdle = () => {
    clearTimeout(idleTimer);
    if (closing || owner.hasVm || owner.peerCount > 0) return;
    idleTimer = setTimeout(() => void shutdown(`no VM and no client for ${idleExitMs} ms`), idleExitMs);
  };

  const server = createServer((socket) => {
    socket.on('error', () => {}); // a client that vanished is just a closed connection here
    sockets.add(socket);
    const connection = connectPeer(owner, socket, socket);
    log(`vmhost: client connected (${owner.peerCount} now)`);
    watchIdle();
    socket.on('close', () => {
      connection.flush();
      connection.detach();
      sockets.delete(socket);
      log(`vmhost: client disconnected (${owner.peerCount} left); the VM is unaffected`);
      watchIdle();
    });
    connection.peer.send({ event: 'hello', pid: process.pid });
  });
  owner.onEnded(() => void shutdown('the VM stopped'));

  await listenPrivately(server, socketPath);
  log('vmhost: listening');
  watchIdle();
  // The VM is released first (owner.done), then the connections and the socket (closing).
  return { shutdown, done: owner.done.then(() => closing) };
}

/** Binds with umask 0177 (never a moment when others could connect), then chmod 0600 to be sure. */
async function listenPrivately(server: Server, socketPath: string): Promise<void> {
  try {
    await bind(server, socketPath);
  } catch (error) {
    // A vmhost that was SIGKILLed leaves its socket file behind; a live one answers on it.
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await answers(socketPath))) throw error;
    rmSync(socketPath, { force: true });
    await bind(server, socketPath);
  }
  chmodSync(socketPath, 0o600);
}

function bind(server: Server, socketPath: string): Promise<void> {
  const umask = process.umask(0o177);
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(socketPath);
  }).finally(() => process.umask(umask));
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function endSocket(socket: Socket, graceMs: number): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), graceMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
  });
}
