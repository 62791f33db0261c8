import { createServer, type Server, type Socket } from 'node:net';
import type WebSocket from 'ws';
import { MacvmError, messageOf } from '../../errors.js';
import { OrchardApiError, type OrchardClient } from './client.js';

/**
 * The guest's SSH server, reached through the controller: a TCP listener on 127.0.0.1:<random>
 * whose every connection is piped through its own port-forward WebSocket
 * (GET /v1/vms/{name}/port-forward?port=22&wait=N) — what `orchard port-forward vm` does
 * (cirruslabs/orchard internal/command/portforward/vm.go: listen, accept, one WebSocket per
 * connection, proxy both ways). Bytes travel as binary WebSocket messages, one chunk each.
 *
 * Until the guest's port accepts connections, the controller keeps retrying for `wait`
 * seconds and then answers with an HTTP error instead of upgrading
 * (internal/controller/api_vms_portforward.go portForward); the local connection is then
 * closed, and the SSH client retries within the VM's deadline. 404 (the VM is gone) and
 * 417 (the VM failed) are reported to `onVmGone`.
 */
export interface PortForwardOptions {
  client: OrchardClient;
  vm: string;
  guestPort: number;
  /** `wait` query parameter: seconds the controller waits for the VM and the guest port. */
  waitSeconds: number;
  /** One line per failed forward, for the VM's log. */
  log?: (line: string) => void;
  /** The controller said the VM no longer exists or has failed. */
  onVmGone?: (error: OrchardApiError) => void;
}

export interface LocalForward {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Connections open right now. */
  readonly connections: number;
  /** Stops listening and cuts every connection. Idempotent. */
  close(): Promise<void>;
}

/** Outgoing WebSocket bytes queued before the local socket is paused. */
const HIGH_WATER = 1 << 20;

export async function listenPortForward(options: PortForwardOptions): Promise<LocalForward> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    handleConnection(socket, options);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new MacvmError('MACVM_FORWARD_FAILED', `Could not listen on 127.0.0.1 for the port forward to ${options.vm}: ${messageOf(error)}`, { cause: error })));
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  let closing: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    get connections() {
      return sockets.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

function handleConnection(socket: Socket, options: PortForwardOptions): void {
  socket.pause();
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const attempt = new AbortController();
  const onEarlyClose = () => attempt.abort(new Error('the local connection closed before the forward was open'));
  socket.once('close', onEarlyClose);
  options.client.openPortForward(options.vm, options.guestPort, options.waitSeconds, attempt.signal).then(
    (ws) => {
      socket.off('close', onEarlyClose);
      if (socket.destroyed) {
        ws.terminate();
        return;
      }
      pipe(socket, ws);
    },
    (error: unknown) => {
      socket.destroy();
      if (attempt.signal.aborted) return;
      if (error instanceof OrchardApiError && (error.status === 404 || error.status === 417)) options.onVmGone?.(error);
      options.log?.(`port-forward to guest port ${options.guestPort} failed: ${messageOf(error)}`);
    },
  );
}

/** Raw bytes both ways, with back-pressure; a close on either side closes the other. */
function pipe(socket: Socket, ws: WebSocket): void {
  let pending = 0;
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!socket.write(bytes)) {
      ws.pause();
      socket.once('drain', () => ws.resume());
    }
  });
  socket.on('data', (chunk: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    pending += chunk.length;
    ws.send(chunk, { binary: true }, () => {
      pending -= chunk.length;
      if (pending < HIGH_WATER / 2 && socket.isPaused()) socket.resume();
    });
    if (pending >= HIGH_WATER) socket.pause();
  });
  // The guest side closed: end the local connection once what arrived is written.
  ws.once('close', () => socket.end());
  ws.once('error', () => socket.destroy());
  // The local side is done: a normal WebSocket closure (the controller treats 1000 as the user's
  // intent, api_vms_portforward.go), cut off if the controller does not answer it.
  const closeWs = () => {
    if (ws.readyState === ws.OPEN) ws.close(1000);
    if (ws.readyState !== ws.CLOSED) setTimeout(() => ws.terminate(), 2_000).unref();
  };
  socket.once('end', closeWs);
  socket.once('close', closeWs);
  socket.resume();
}
