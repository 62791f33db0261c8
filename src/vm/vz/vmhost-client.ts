import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { MacvmError, type MacvmErrorCode } from '../../errors.js';
import type { ExitInfo } from '../types.js';
import { macvmErrorFromWire } from './errors.js';
import { childExit, watchProcessExit } from './process-exit.js';
import { LineDecoder, parseEvent, serializeMessage, type VmhostCommand, type VmhostEvent } from './vmhost-protocol.js';

export interface VmhostLaunch {
  /** The signed node copy (or any node, for tests). */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Where vmhost's stderr goes (its log); read back for error messages. */
  logPath?: string;
  /** Milliseconds to wait for the "hello" line. */
  helloTimeoutMs?: number;
}

export interface VmhostConnectOptions {
  /** The vmhost's start time (vm.json's pidStartTime), so a reused PID is never taken for it. */
  pidStartTime?: string;
  /** vmhost.log, read back for error messages. */
  logPath?: string;
  /**
   * How this process learns that vmhost exited. Default: polling the PID and start time. The
   * process that spawned the detached vmhost passes its child's exit (which has the code).
   */
  exited?: Promise<ExitInfo>;
  /** Milliseconds for connecting and the "hello" line together. */
  timeoutMs?: number;
}

type Listener = (event: VmhostEvent) => void;

/** A spawned vmhost on our pipes, or a connection to a detached vmhost's socket. */
type Link = { kind: 'child'; child: ChildProcess } | { kind: 'socket'; socket: Socket; pid: number };

const FALLBACK: Record<VmhostCommand['cmd'], MacvmErrorCode> = {
  start: 'MACVM_BOOT_FAILED',
  requestStop: 'MACVM_STOP_FAILED',
  stop: 'MACVM_STOP_FAILED',
  state: 'MACVM_VM_STOPPED',
  restoreImage: 'MACVM_IPSW_INVALID',
  newMachineIdentifier: 'MACVM_INSTALL_FAILED',
  createAuxiliaryStorage: 'MACVM_INSTALL_FAILED',
  install: 'MACVM_INSTALL_FAILED',
};

/**
 * The host side of the vmhost line protocol: sends commands, matches replies by id, and fans
 * out events, either to a vmhost it spawned (spawn: stdio mode) or to a detached one it
 * connected to (connect: listen mode, see vmhost-main.ts).
 *
 * For a spawned vmhost, closing stdin (close()) — or this process dying — makes vmhost stop
 * its VM and exit; close() resolves with its exit. For a connected one, close() only
 * disconnects (resolving with nothing): the VM lives on, and `exited` follows the vmhost
 * process, not the connection.
 */
export class VmhostClient<Closed extends ExitInfo | void = ExitInfo> {
  readonly exited: Promise<ExitInfo>;
  /** Last state the VM reported ("starting", "running", "stopped", ...). */
  lastState = 'none';
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: VmhostCommand['cmd']; onProgress?: (f: number) => void }>();
  private readonly listeners = new Set<Listener>();
  private exitInfo?: ExitInfo;
  private disconnected = false;
  private holdsProcessOnlyWhileBusy = false;

  private constructor(
    private readonly link: Link,
    exited: Promise<ExitInfo>,
    private readonly logPath: string | undefined,
  ) {
    this.exited = exited.then((info) => (this.exitInfo = info));
    void this.exited.then(async () => this.rejectPending(await this.describeExit()));
    const decoder = new LineDecoder();
    const input = link.kind === 'child' ? link.child.stdout! : link.socket;
    input.on('data', (chunk: Buffer) => {
      for (const line of decoder.push(chunk)) this.onLine(line);
    });
    input.on('end', () => decoder.end().forEach((line) => this.onLine(line)));
    if (link.kind === 'socket') {
      link.socket.on('close', () => {
        this.disconnected = true;
        this.rejectPending(`The connection to vmhost (pid ${link.pid}) closed.`);
      });
    }
  }

  static async spawn(launch: VmhostLaunch): Promise<VmhostClient> {
    const logFd = launch.logPath ? openSync(launch.logPath, 'a', 0o600) : 'ignore';
    let child: ChildProcess;
    try {
      child = spawn(launch.command, launch.args, { cwd: launch.cwd, env: launch.env ?? process.env, stdio: ['pipe', 'pipe', logFd] });
    } finally {
      if (typeof logFd === 'number') closeSync(logFd);
    }
    child.stdin!.on('error', () => {}); // EPIPE after vmhost died: surfaced through `exited`
    const client = new VmhostClient<ExitInfo>({ kind: 'child', child }, childExit(child), launch.logPath);
    const first = await client.firstWord(launch.helloTimeoutMs ?? 15_000);
    if (first !== 'timeout' && first?.event === 'hello') return client;
    child.kill('SIGKILL');
    await client.exited;
    if (first !== 'timeout' && first?.event === 'error') throw macvmErrorFromWire(first.error, 'MACVM_BOOT_FAILED', 'vmhost could not start');
    throw new MacvmError('MACVM_BOOT_FAILED', first === 'timeout' ? `vmhost did not say hello within ${launch.helloTimeoutMs ?? 15_000} ms.` : await client.describeExit(), {
      details: { command: launch.command, args: launch.args },
    });
  }

  /**
   * Connects to the socket of a detached vmhost (pid `pid`). Rejects with MACVM_VM_STOPPED
   * when nothing answers there (no socket, or vmhost gone) or it does not say hello in time.
   */
  static async connect(socketPath: string, pid: number, options: VmhostConnectOptions = {}): Promise<VmhostClient<void>> {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const socket = createConnection(socketPath);
    socket.on('error', () => {}); // a vanished vmhost closes the connection; 'close' reports it
    const connected = await new Promise<Error | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        resolve(error);
      });
    });
    if (connected) {
      socket.destroy();
      throw new MacvmError('MACVM_VM_STOPPED', `vmhost (pid ${pid}) does not answer on ${socketPath}: ${connected.message}`, { cause: connected });
    }
    const client = new VmhostClient<void>({ kind: 'socket', socket, pid }, options.exited ?? watchProcessExit(pid, options.pidStartTime), options.logPath);
    const first = await client.firstWord(timeoutMs);
    if (first !== 'timeout' && first?.event === 'hello') return client;
    socket.destroy();
    if (first !== 'timeout' && first?.event === 'error') throw macvmErrorFromWire(first.error, 'MACVM_VM_STOPPED', 'vmhost refused the connection');
    throw new MacvmError('MACVM_VM_STOPPED', `vmhost (pid ${pid}) on ${socketPath} ${first === 'timeout' ? `did not say hello within ${timeoutMs} ms` : 'closed the connection at once'}.`);
  }

  get pid(): number | undefined {
    return this.link.kind === 'child' ? this.link.child.pid : this.link.pid;
  }

  /**
   * For a connection to a detached vmhost: let this process exit while connected. The socket
   * holds the event loop only while a command awaits its reply, so `macvm vm start` ends as
   * soon as its own work is done, and a stop() later in the same process still completes.
   */
  unref(): void {
    if (this.link.kind !== 'socket') return;
    this.holdsProcessOnlyWhileBusy = true;
    if (this.pending.size === 0) this.link.socket.unref();
  }

  /** Sends a command and resolves with its result; rejects with a MacvmError. */
  request<T = unknown>(command: VmhostCommand, options: { onProgress?: (fraction: number) => void } = {}): Promise<T> {
    if (this.exitInfo) return Promise.reject(new MacvmError(FALLBACK[command.cmd], 'vmhost has exited.'));
    if (this.disconnected) return Promise.reject(new MacvmError(FALLBACK[command.cmd], `The connection to vmhost (pid ${this.pid}) is closed.`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cmd: command.cmd, onProgress: options.onProgress });
      const line = serializeMessage({ ...command, id });
      if (this.link.kind === 'child') {
        this.link.child.stdin!.write(line);
      } else {
        this.link.socket.ref();
        this.link.socket.write(line);
      }
    });
  }

  /** Subscribes to state/stopped/error events; returns the unsubscribe function. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The next event matching `predicate`. */
  waitFor(predicate: (event: VmhostEvent) => boolean): Promise<VmhostEvent> {
    return new Promise((resolve) => {
      const off = this.on((event) => {
        if (!predicate(event)) return;
        off();
        resolve(event);
      });
    });
  }

  /**
   * Spawned: ends stdin (vmhost stops its VM and exits); SIGKILL after `graceMs`; resolves with
   * the exit. Connected: disconnects (destroying the socket after `graceMs`); the VM runs on.
   */
  close(graceMs = 10_000): Promise<Closed> {
    return (this.link.kind === 'child' ? this.closeChild(this.link.child, graceMs) : this.disconnect(this.link.socket, graceMs)) as Promise<Closed>;
  }

  private async closeChild(child: ChildProcess, graceMs: number): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([this.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut) child.kill('SIGKILL');
    return this.exited;
  }

  private async disconnect(socket: Socket, graceMs: number): Promise<void> {
    if (socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.destroy(), graceMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  /** The first thing vmhost says: "hello", an "error", or nothing before it exits/hangs up (undefined). */
  private async firstWord(timeoutMs: number): Promise<VmhostEvent | undefined | 'timeout'> {
    const link = this.link;
    const gone = link.kind === 'child' ? this.exited : new Promise<void>((resolve) => link.socket.once('close', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.waitFor((event) => event.event === 'hello' || event.event === 'error'),
      gone.then(() => undefined),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
  }

  private rejectPending(reason: string): void {
    for (const [, waiter] of this.pending) waiter.reject(new MacvmError(FALLBACK[waiter.cmd], reason));
    this.pending.clear();
  }

  private onLine(line: string): void {
    let event: VmhostEvent;
    try {
      event = parseEvent(line);
    } catch {
      return; // not a protocol line (a stray print): never fatal
    }
    if (event.event === 'reply') {
      const waiter = this.pending.get(event.id);
      if (!waiter) return;
      this.pending.delete(event.id);
      if (this.pending.size === 0 && this.holdsProcessOnlyWhileBusy && this.link.kind === 'socket') this.link.socket.unref();
      if (event.ok) waiter.resolve(event.result);
      else waiter.reject(macvmErrorFromWire(event.error, FALLBACK[waiter.cmd]));
      return;
    }
    if (event.event === 'progress') this.pending.get(event.id)?.onProgress?.(event.fraction);
    if (event.event === 'state') this.lastState = event.state;
    if (event.event === 'stopped') this.lastState = 'stopped';
    for (const listener of [...this.listeners]) listener(event);
  }

  private async describeExit(): Promise<string> {
    const info = this.exitInfo;
    const how = info?.signal ? `was killed by ${info.signal}` : info?.code != null ? `exited with code ${info.code}` : 'exited';
    const tail = await logTail(this.logPath, 10);
    return `vmhost ${how}.${tail ? `\nLast log lines:\n${tail}` : ''}`;
  }
}

/** The last `lines` lines of a log file ('' when there is none). */
export async function logTail(path: string | undefined, lines: number): Promise<string> {
  if (!path) return '';
  try {
    return (await readFile(path, 'utf8')).trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
