import { createConnection, type Socket } from 'node:net';
import type { RunContext } from './run-context.js';

export interface ProgressMessage {
  suite: string;
  state: string;
  detail?: string;
  /** With state 'done': false when a test of the suite failed (default true). */
  ok?: boolean;
}

let socket: Socket | undefined;
let socketPath: string | undefined;

/**
 * Workers tell the main process's progress display what their suites are doing, one JSON
 * line per state change over a unix socket. Fire and forget: progress must never fail a test.
 */
export function reportProgress(context: RunContext, message: ProgressMessage): void {
  if (!context.progressSocket) return;
  if (!socket || socketPath !== context.progressSocket || socket.destroyed) {
    socketPath = context.progressSocket;
    socket = createConnection(context.progressSocket);
    socket.on('error', () => {});
    socket.unref();
  }
  socket.write(`${JSON.stringify({ ...message, pid: process.pid })}\n`);
}
