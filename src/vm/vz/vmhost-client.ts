import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { MacvmError, type MacvmErrorCode } from '../../errors.js';
import type { ExitInfo } from '../types.js';
import { macvmErrorFromWire } from './errors.js';
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

type Listener = (event: VmhostEvent) => void;

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
 * The host side of the vmhost line protocol: spawns one vmhost, sends commands, matches
 * replies by id, and fans out events. Closing stdin (close()) — or this process dying —
 * makes vmhost stop its VM and exit.
 */
export class VmhostClient {
  readonly exited: Promise<ExitInfo>;
  /** Last state the VM reported ("starting", "running", "stopped", ...). */
  lastState = 'none';
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: VmhostCommand['cmd']; onProgress?: (f: number) => void }>();
  private readonly listeners = new Set<Listener>();
  private exitInfo?: ExitInfo;

  private constructor(
    private readonly child: ChildProcess,
    private readonly launch: VmhostLaunch,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.once('error', () => {
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
    void this.exited.then(async () => {
      const reason = await this.describeExit();
      for (const [, waiter] of this.pending) waiter.reject(new MacvmError(FALLBACK[waiter.cmd], reason));
      this.pending.clear();
    });
    const decoder = new LineDecoder();
    child.stdout!.on('data', (chunk: Buffer) => {
      for (const line of decoder.push(chunk)) this.onLine(line);
    });
    child.stdout!.on('end', () => decoder.end().forEach((line) => this.onLine(line)));
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
    const client = new VmhostClient(child, launch);
    const hello = client.waitFor((event) => event.event === 'hello' || event.event === 'error');
    const timeoutMs = launch.helloTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      hello,
      client.exited.then(() => undefined),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]).finally(() => clearTimeout(timer));
    if (first && first !== 'timeout' && first.event === 'hello') return client;
    child.kill('SIGKILL');
    await client.exited;
    if (first && first !== 'timeout' && first.event === 'error') throw macvmErrorFromWire(first.error, 'MACVM_BOOT_FAILED', 'vmhost could not start');
    throw new MacvmError('MACVM_BOOT_FAILED', first === 'timeout' ? `vmhost did not say hello within ${timeoutMs} ms.` : await client.describeExit(), {
      details: { command: launch.command, args: launch.args },
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a command and resolves with its result; rejects with a MacvmError. */
  request<T = unknown>(command: VmhostCommand, options: { onProgress?: (fraction: number) => void } = {}): Promise<T> {
    if (this.exitInfo) return Promise.reject(new MacvmError(FALLBACK[command.cmd], 'vmhost has exited.'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cmd: command.cmd, onProgress: options.onProgress });
      this.child.stdin!.write(serializeMessage({ ...command, id }));
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

  /** Ends stdin (vmhost stops its VM and exits); SIGKILL after `graceMs`. */
  async close(graceMs = 10_000): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    this.child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([this.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut) this.child.kill('SIGKILL');
    return this.exited;
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
    const how = info?.signal ? `was killed by ${info.signal}` : `exited with code ${info?.code ?? 'unknown'}`;
    let tail = '';
    if (this.launch.logPath) {
      try {
        tail = (await readFile(this.launch.logPath, 'utf8')).trim().split('\n').slice(-10).join('\n');
      } catch {
        // no log
      }
    }
    return `vmhost ${how}.${tail ? `\nLast log lines:\n${tail}` : ''}`;
  }
}
