import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError } from '../../errors.js';
import type { Deadline } from '../../shared/deadline.js';
import type { ExitInfo } from '../types.js';
import { macvmErrorFromWire } from './errors.js';
import { childExit, hasExited, settlesWithin } from './process-exit.js';
import { logTail, VmhostClient } from './vmhost-client.js';
import { parseEvent } from './vmhost-protocol.js';

/**
 * A detached vmhost (listen mode, see vmhost-main.ts): started as its own session so it
 * outlives the process that started it (`macvm vm start`), reached through a unix socket in
 * the clone's runtime dir by whichever process wants to stop it later.
 */
export function vmhostSocketPath(runtimeDir: string): string {
  return join(runtimeDir, 'vmhost.sock');
}

export function vmhostLogPath(runtimeDir: string): string {
  return join(runtimeDir, 'vmhost.log');
}

/** sun_path holds 104 bytes on macOS (108 on Linux), the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 103;
/** How long a vmhost may take to load the addon and listen (the boot deadline may cut it shorter). */
const LISTEN_TIMEOUT_MS = 30_000;
const DEADLINE_MARGIN_MS = 250;

export interface DetachedVmhostLaunch {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  runtimeDir: string;
  deadline: Deadline;
}

export interface DetachedVmhost {
  child: ChildProcess;
  /** The child's exit (with its code), seen by this process only. */
  exited: Promise<ExitInfo>;
  /** Connected, and already unref'd: it holds this process only while a command is in flight. */
  client: VmhostClient<void>;
  socketPath: string;
}

/**
 * Spawns vmhost in listen mode and connects once its socket accepts. Nothing of it keeps this
 * process alive: the child is unref'd, its stdio goes to vmhost.log (no pipes to us), and the
 * connection holds the event loop only while a command awaits its reply.
 */
export async function spawnDetachedVmhost(launch: DetachedVmhostLaunch): Promise<DetachedVmhost> {
  const socketPath = vmhostSocketPath(launch.runtimeDir);
  const logPath = vmhostLogPath(launch.runtimeDir);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new MacvmError('MACVM_BOOT_FAILED', `The vmhost socket path ${socketPath} is longer than a unix socket path may be (${MAX_SOCKET_PATH_BYTES} bytes).`, {
      hint: 'Set MACVM_HOME to a shorter directory.',
    });
  }
  const logFd = openSync(logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(launch.command, [...launch.args, '--listen', socketPath], {
      cwd: launch.runtimeDir,
      env: launch.env ?? process.env,
      stdio: ['ignore', logFd, logFd],
      detached: true,
    });
  } finally {
    closeSync(logFd);
  }
  const exited = childExit(child);
  child.unref();
  try {
    const client = await connectWhenListening(socketPath, child, exited, logPath, launch.deadline);
    client.unref();
    return { child, exited, client, socketPath };
  } catch (error) {
    await endChild(child, exited);
    throw error;
  }
}

async function connectWhenListening(socketPath: string, child: ChildProcess, exited: Promise<ExitInfo>, logPath: string, deadline: Deadline): Promise<VmhostClient<void>> {
  let exit: ExitInfo | undefined;
  void exited.then((info) => (exit = info));
  const pid = child.pid;
  // Give up just before the deadline does: this error carries vmhost.log, the deadline's does not.
  const giveUpAt = Date.now() + Math.min(LISTEN_TIMEOUT_MS, deadline.remainingMs() - DEADLINE_MARGIN_MS);
  while (pid !== undefined && !exit && Date.now() < giveUpAt && !deadline.signal.aborted) {
    try {
      return await VmhostClient.connect(socketPath, pid, { exited, logPath, timeoutMs: Math.max(1, Math.min(5_000, giveUpAt - Date.now())) });
    } catch {
      await sleep(25); // not listening yet
    }
  }
  if (exit || pid === undefined) throw await startFailure(logPath, exit);
  throw new MacvmError('MACVM_BOOT_FAILED', `vmhost (pid ${pid}) did not accept connections on ${socketPath} in time.`, {
    hint: (await logTail(logPath, 10)) || 'vmhost.log in the runtime dir is empty.',
  });
}

/** vmhost exited before it listened: its log says why (in listen mode its stdout goes there too). */
async function startFailure(logPath: string, exit: ExitInfo | undefined): Promise<MacvmError> {
  const tail = await logTail(logPath, 10);
  for (const line of tail.split('\n').reverse()) {
    try {
      const event = parseEvent(line);
      if (event.event === 'error') return macvmErrorFromWire(event.error, 'MACVM_BOOT_FAILED', 'vmhost could not start');
    } catch {
      // a plain log line
    }
  }
  const how = exit?.signal ? `was killed by ${exit.signal}` : `exited with code ${exit?.code ?? 'unknown'}`;
  return new MacvmError('MACVM_BOOT_FAILED', `vmhost ${how} before it accepted connections.`, { hint: tail || 'vmhost.log in the runtime dir is empty.' });
}

/** SIGTERM (vmhost stops its VM, if any, and exits), then SIGKILL: for our own child only. */
export async function endChild(child: ChildProcess, exited: Promise<ExitInfo>): Promise<void> {
  if (await settlesWithin(exited, 0)) return;
  child.kill('SIGTERM');
  if (await settlesWithin(exited, 5_000)) return;
  child.kill('SIGKILL');
  await settlesWithin(exited, 5_000);
}

export interface DetachedStopTarget {
  pid: number;
  pidStartTime?: string;
  runtimeDir: string;
  /** Resolves when the vmhost process has exited. */
  exited: Promise<ExitInfo>;
  /** An open connection to use; otherwise one is made (and closed again). */
  client?: VmhostClient<void>;
  /** Names the VM in errors. */
  vmId: string;
}

/**
 * Stops a detached VM in order: ask the guest (requestStop) and wait up to `gracefulMs` for it
 * to stop, then a hard `stop`; vmhost exits once its VM has ended. If the socket is gone or
 * vmhost does not exit, SIGTERM and then SIGKILL it — by PID only while the PID still belongs to
 * the process that started at `pidStartTime`. Resolves once the vmhost process is gone.
 */
export async function stopDetachedVmhost(target: DetachedStopTarget, gracefulMs: number): Promise<void> {
  if (await settlesWithin(target.exited, 0)) return;
  let client = target.client;
  if (!client) {
    client = await VmhostClient.connect(vmhostSocketPath(target.runtimeDir), target.pid, {
      pidStartTime: target.pidStartTime,
      exited: target.exited,
      logPath: vmhostLogPath(target.runtimeDir),
      timeoutMs: 5_000,
    }).catch(() => undefined); // no socket, or vmhost hung: the signals below
  }
  let exitsByItself = false;
  try {
    if (client) exitsByItself = await askToStop(client, target.exited, gracefulMs);
  } finally {
    if (client && client !== target.client) await client.close(1_000);
  }
  if (exitsByItself && (await settlesWithin(target.exited, 10_000))) return;
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (await hasExited(target.pid, target.pidStartTime)) return;
    try {
      process.kill(target.pid, signal);
    } catch {
      // gone in between
    }
    if (await settlesWithin(target.exited, 5_000)) return;
  }
  if (!(await hasExited(target.pid, target.pidStartTime))) {
    throw new MacvmError('MACVM_STOP_FAILED', `vmhost (pid ${target.pid}) for ${target.vmId} did not exit, even after SIGKILL.`);
  }
}

/**
 * Stops the VM over the protocol; true when vmhost now exits by itself (its VM has ended).
 * Every reply is waited for a bounded time: a wedged vmhost is a case for the signals.
 */
async function askToStop(client: VmhostClient<void>, exited: Promise<ExitInfo>, gracefulMs: number): Promise<boolean> {
  const stopped = Promise.race([client.waitFor((event) => event.event === 'stopped'), exited]);
  // A connection made now has heard no state event yet: ask.
  const state = await timeboxed(client.request<string>({ cmd: 'state' }), REPLY_TIMEOUT_MS).catch(() => client.lastState);
  if (state === 'none') return false; // no VM was ever started: only a signal ends this vmhost
  if (state === 'stopped' || state === 'error') return true;
  if (gracefulMs > 0 && state === 'running') {
    try {
      await timeboxed(client.request({ cmd: 'requestStop' }), REPLY_TIMEOUT_MS);
      if (await settlesWithin(stopped, gracefulMs)) return true;
    } catch {
      // the guest could not be asked; the hard stop below handles it
    }
  }
  if (await settlesWithin(exited, 0)) return true;
  return timeboxed(client.request({ cmd: 'stop' }), HARD_STOP_TIMEOUT_MS).then(
    () => true,
    () => false,
  );
}

const REPLY_TIMEOUT_MS = 5_000;
const HARD_STOP_TIMEOUT_MS = 15_000;

function timeboxed<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
