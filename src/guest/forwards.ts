import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client, ClientChannel, TcpConnectionDetails } from 'ssh2';
import { MacvmError, messageOf } from '../errors.js';
import type { HostForwardOptions, PortForward } from './types.js';

/**
 * Port forwards over one SSH connection. Host-side listeners bind 127.0.0.1 only:
 * a forward into a test VM must never be reachable from the network. Each forward
 * tracks its live connections so close() really ends them, not just the listener.
 */

/** Pipes two streams both ways; when either side ends or fails, both are torn down. */
function splice(a: Duplex, b: Duplex, connections: Set<Duplex>): void {
  connections.add(a);
  connections.add(b);
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    connections.delete(a);
    connections.delete(b);
    a.destroy();
    b.destroy();
  };
  for (const stream of [a, b]) {
    stream.once('close', finish);
    // `on`, not `once`: a destroyed stream can still emit a second error (EPIPE).
    stream.on('error', finish);
  }
  a.pipe(b);
  b.pipe(a);
}

/** guest port → 127.0.0.1:<port> on the host: each accepted socket becomes a direct-tcpip channel. */
export async function openLocalForward(
  client: Client,
  guestPort: number,
  options: { guestHost?: string; localPort?: number } = {},
): Promise<PortForward> {
  const guestHost = options.guestHost ?? '127.0.0.1';
  const connections = new Set<Duplex>();
  // allowHalfOpen: a client that sends EOF (e.g. after a request) must still get
  // the reply, so its end is forwarded as EOF instead of closing the socket.
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    socket.pause();
    connections.add(socket);
    socket.on('error', () => socket.destroy());
    client.forwardOut(socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0, guestHost, guestPort, (error, channel: ClientChannel) => {
      connections.delete(socket);
      // The guest refused (nothing listens there, or forwarding is off): the host
      // client sees its connection closed, like a refused connection.
      if (error || socket.destroyed) {
        channel?.destroy();
        socket.destroy();
        return;
      }
      splice(socket, channel, connections);
      socket.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new MacvmError('MACVM_FORWARD_FAILED', `Could not listen on 127.0.0.1:${options.localPort ?? 0} for a forward to guest ${guestHost}:${guestPort}: ${messageOf(error)}.`, {
          hint: options.localPort ? 'Another process holds that port; leave localPort out to get a free one.' : undefined,
          details: { guestHost, guestPort, localPort: options.localPort ?? 0 },
          cause: error,
        }),
      ),
    );
    server.listen(options.localPort ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const connection of connections) connection.destroy();
        connections.clear();
      });
      return closing;
    },
  };
}

/**
 * Reverse forwards: the guest listens (tcpip-forward) and hands each incoming
 * connection back over the SSH connection, where it is piped to a host port.
 * ssh2 reports every such connection on the client, so one dispatcher per session
 * routes them by the guest port they arrived on.
 */
export class ReverseForwards {
  private readonly routes = new Map<number, { hostHost: string; hostPort: number; connections: Set<Duplex>; onHostUnreachable?: (error: Error) => void }>();

  constructor(private readonly client: Client) {
    client.on('tcp connection', (details: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void) => this.route(details, accept, reject));
  }

  async open(hostPort: number, options: HostForwardOptions = {}): Promise<PortForward> {
    const hostHost = options.hostHost ?? '127.0.0.1';
    const requested = options.guestPort ?? 0;
    // Loopback in the guest: the forward is for processes inside the VM, and dropbear
    // and OpenSSH both treat 127.0.0.1 as "local only" without GatewayPorts.
    const bindAddress = '127.0.0.1';
    const port = await new Promise<number>((resolve, reject) => {
      this.client.forwardIn(bindAddress, requested, (error, bound) => {
        if (error) {
          reject(
            new MacvmError('MACVM_FORWARD_FAILED', `The guest refused to listen on ${bindAddress}:${requested} for a reverse forward to ${hostHost}:${hostPort}: ${messageOf(error)}.`, {
              hint: 'The guest\'s SSH server must allow TCP forwarding (OpenSSH: AllowTcpForwarding yes; dropbear: no -j/-k), and the port must be free in the guest.',
              details: { guestPort: requested, hostHost, hostPort },
              cause: error,
            }),
          );
          return;
        }
        // Servers answer with the port they chose only when asked for port 0.
        resolve(requested === 0 ? bound : requested);
      });
    });
    if (!port) {
      throw new MacvmError('MACVM_FORWARD_FAILED', 'The guest\'s SSH server accepted a reverse forward on port 0 but did not say which port it bound.', {
        hint: 'Pass an explicit guestPort.',
        details: { hostHost, hostPort },
      });
    }
    const connections = new Set<Duplex>();
    this.routes.set(port, { hostHost, hostPort, connections, onHostUnreachable: options.onHostUnreachable });
    let closing: Promise<void> | undefined;
    return {
      port,
      close: () => {
        closing ??= new Promise<void>((resolve) => {
          this.routes.delete(port);
          for (const connection of connections) connection.destroy();
          connections.clear();
          // When the connection is already gone the guest dropped the listener with it,
          // and ssh2 may never answer; the timer keeps close() from hanging on that.
          const fallback = setTimeout(resolve, 2_000);
          fallback.unref();
          try {
            this.client.unforwardIn(bindAddress, port, () => {
              clearTimeout(fallback);
              resolve();
            });
          } catch {
            clearTimeout(fallback);
            resolve();
          }
        });
        return closing;
      },
    };
  }

  private route(details: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void): void {
    const route = this.routes.get(details.destPort);
    if (!route) {
      reject();
      return;
    }
    const channel = accept();
    channel.pause();
    const socket = connect({ port: route.hostPort, host: route.hostHost, allowHalfOpen: true });
    route.connections.add(channel);
    route.connections.add(socket);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      splice(channel, socket, route.connections);
      channel.resume();
    });
    socket.on('error', (error) => {
      // After the connect an error is the two ends' business (a reset); before it, the host port is not there.
      if (!connected) route.onHostUnreachable?.(error);
      route.connections.delete(channel);
      route.connections.delete(socket);
      channel.destroy();
    });
  }
}
