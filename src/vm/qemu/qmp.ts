import { createConnection, type Socket } from 'node:net';
import { MacvmError, messageOf } from '../../errors.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  command: string;
}

/**
 * A small QMP (QEMU Machine Protocol) client over the VM's unix socket: one JSON object
 * per line; the server greets, we negotiate capabilities, then each command gets a
 * reply matched by `id`. Events arrive interleaved and go to listeners.
 */
export class QmpClient {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    // An idle control socket never keeps a process alive (`macvm vm start` exits, the VM runs
    // on); while a command awaits its reply it does, or node would exit mid-command.
    socket.unref();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('close', () => this.failAll(new MacvmError('MACVM_QMP_ERROR', 'The QMP connection closed (the VM process has exited).')));
    socket.on('error', (error) => this.failAll(new MacvmError('MACVM_QMP_ERROR', `QMP socket error: ${error.message}`, { cause: error })));
  }

  static async connect(socketPath: string, timeoutMs = 5_000): Promise<QmpClient> {
    const socket = createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MacvmError('MACVM_QMP_ERROR', `QMP at ${socketPath} did not answer within ${timeoutMs} ms.`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new MacvmError('MACVM_QMP_ERROR', `Cannot connect to QMP at ${socketPath}: ${error.message}`, { cause: error }));
      });
    });
    const client = new QmpClient(socket);
    await client.greeting(timeoutMs);
    await client.execute('qmp_capabilities');
    return client;
  }

  private greetingWaiter: ((line: Record<string, unknown>) => void) | undefined;

  private greeting(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new MacvmError('MACVM_QMP_ERROR', 'QMP sent no greeting.')), timeoutMs);
      this.greetingWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `macvm-${this.nextId++}`;
    const message = JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id });
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, command });
      this.socket.ref();
      this.socket.write(`${message}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch (error) {
      this.failAll(new MacvmError('MACVM_QMP_ERROR', `QMP sent something that is not JSON: ${messageOf(error)}`));
      return;
    }
    if ('QMP' in message) {
      this.greetingWaiter?.(message);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof message.event === 'string') {
      for (const listener of this.eventListeners) listener(message as unknown as QmpEvent);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id ? this.pending.get(id) : undefined;
    if (!pending || !id) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.socket.unref();
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(
        new MacvmError('MACVM_QMP_ERROR', `QEMU refused "${pending.command}": ${error.desc ?? 'unknown error'} (${error.class ?? 'Error'}).`, {
          details: { command: pending.command, errorClass: error.class },
        }),
      );
    } else {
      pending.resolve(message.return);
    }
  }

  private failAll(error: Error): void {
    this.closedError ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
