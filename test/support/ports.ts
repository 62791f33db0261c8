import { connect } from 'node:net';

/** Whether 127.0.0.1:<port> refuses a TCP connection: how tests prove a forward or server is gone. */
export function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}
