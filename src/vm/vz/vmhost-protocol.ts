import type { VzVmSpec } from './vm-spec.js';

/**
 * The vmhost line protocol: one JSON object per line, UTF-8, on the vmhost's stdin (commands)
 * and stdout (replies and events), or — for a detached VM — on each connection to its unix
 * socket (see vmhost-main.ts for the two modes). stderr is free-form log text.
 *
 *   host → vmhost   {"id":1,"cmd":"start","spec":{...}}      every command carries a fresh id
 *   vmhost → host   {"event":"hello","pid":123}              once, when the addon has loaded
 *                   {"event":"reply","id":1,"ok":true,"result":...}
 *                   {"event":"reply","id":1,"ok":false,"error":{"code":"MACVM_SLOT_LIMIT","message":...}}
 *                   {"event":"state","state":"running"}      KVO on VZVirtualMachine.state
 *                   {"event":"stopped","reason":"guest"}     guestDidStopVirtualMachine:
 *                   {"event":"stopped","reason":"error","error":{...}}   virtualMachine:didStopWithError:
 *                   {"event":"progress","id":4,"fraction":0.42}          install progress
 *                   {"event":"error","error":{...}}          a problem tied to no command
 *
 * Every connection gets "hello" first. Replies (and progress) go to the connection that sent
 * the command; state and stopped events go to every connection.
 *
 * One vmhost owns at most one VM. In stdio mode, when its stdin closes or it gets
 * SIGTERM/SIGINT it stops the VM (hard stop) and exits, so a VM never outlives the process that
 * asked for it. In listen mode a client leaving changes nothing; the VM ending (stop command,
 * guest shutdown, error, signal) makes vmhost remove its socket and exit.
 */
export type VmhostCommand =
  | { cmd: 'start'; spec: VzVmSpec }
  | { cmd: 'requestStop' }
  | { cmd: 'stop' }
  | { cmd: 'state' }
  | { cmd: 'restoreImage'; path?: string }
  | { cmd: 'newMachineIdentifier' }
  | { cmd: 'createAuxiliaryStorage'; path: string; hardwareModel: string }
  | { cmd: 'install'; spec: VzVmSpec; ipswPath: string };

export type VmhostRequest = VmhostCommand & { id: number };

export interface WireError {
  code: string;
  message: string;
  domain?: string;
  nativeCode?: number;
}

export type VmhostEvent =
  | { event: 'hello'; pid: number }
  | { event: 'reply'; id: number; ok: true; result?: unknown }
  | { event: 'reply'; id: number; ok: false; error: WireError }
  | { event: 'state'; state: string }
  | { event: 'stopped'; reason: 'guest' | 'error' | 'host'; error?: WireError }
  | { event: 'progress'; id: number; fraction: number }
  | { event: 'error'; error: WireError };

const COMMANDS = new Set(['start', 'requestStop', 'stop', 'state', 'restoreImage', 'newMachineIdentifier', 'createAuxiliaryStorage', 'install']);

export function serializeMessage(message: VmhostRequest | VmhostEvent): string {
  // JSON.stringify never emits a raw newline, so one message is always one line.
  return `${JSON.stringify(message)}\n`;
}

/** Parses one command line; throws an Error whose message says what is wrong. */
export function parseRequest(line: string): VmhostRequest {
  const value = parseObject(line);
  if (typeof value.id !== 'number' || !Number.isInteger(value.id)) throw new Error('command without an integer "id"');
  if (typeof value.cmd !== 'string' || !COMMANDS.has(value.cmd)) throw new Error(`unknown command ${JSON.stringify(value.cmd)}`);
  if ((value.cmd === 'start' || value.cmd === 'install') && (typeof value.spec !== 'object' || value.spec === null)) {
    throw new Error(`"${value.cmd}" needs a "spec" object`);
  }
  if (value.cmd === 'install' && typeof value.ipswPath !== 'string') throw new Error('"install" needs "ipswPath"');
  if (value.cmd === 'createAuxiliaryStorage' && (typeof value.path !== 'string' || typeof value.hardwareModel !== 'string')) {
    throw new Error('"createAuxiliaryStorage" needs "path" and "hardwareModel"');
  }
  return value as unknown as VmhostRequest;
}

/** Parses one vmhost output line. */
export function parseEvent(line: string): VmhostEvent {
  const value = parseObject(line);
  switch (value.event) {
    case 'hello':
    case 'state':
    case 'stopped':
    case 'error':
      return value as unknown as VmhostEvent;
    case 'reply':
    case 'progress':
      if (typeof value.id !== 'number') throw new Error(`"${value.event}" without an id`);
      return value as unknown as VmhostEvent;
    default:
      throw new Error(`unknown event ${JSON.stringify(value.event)}`);
  }
}

function parseObject(line: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`not JSON: ${line.length > 80 ? `${line.slice(0, 80)}…` : line}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
  return value as Record<string, unknown>;
}

/**
 * Splits a byte stream into lines. Chunks arrive cut anywhere — mid-line, mid-UTF-8
 * character — so bytes are kept until a newline completes them.
 */
export class LineDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxLineBytes = 16 * 2 ** 20) {}

  push(chunk: Buffer | string): string[] {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.pending = this.pending.length ? Buffer.concat([this.pending, bytes]) : bytes;
    const lines: string[] = [];
    let start = 0;
    for (let nl = this.pending.indexOf(10, start); nl >= 0; nl = this.pending.indexOf(10, start)) {
      const line = this.pending.subarray(start, nl).toString('utf8').replace(/\r$/, '');
      if (line.trim()) lines.push(line);
      start = nl + 1;
    }
    this.pending = this.pending.subarray(start);
    if (this.pending.length > this.maxLineBytes) {
      this.pending = Buffer.alloc(0);
      throw new Error(`a line longer than ${this.maxLineBytes} bytes`);
    }
    return lines;
  }

  /** What is left when the stream ends (a last line without a newline). */
  end(): string[] {
    const rest = this.pending.toString('utf8').trim();
    this.pending = Buffer.alloc(0);
    return rest ? [rest] : [];
  }
}
