import type { Client, ClientChannel } from 'ssh2';
import { abortReason, cutOffError, failedError, timeoutError } from './exec-errors.js';
import { endPidScan, scanStderr, startPidScan, type PidScan } from './exec-markers.js';
import { OutputStream } from './exec-output.js';
import { KILL_GRACE_MS, killRemoteTree, sendSignal } from './kill-tree.js';
import type { ExecOptions, ExecResult } from './types.js';

/** What a command needs from the session that runs it. */
export interface ExecContext {
  client: Client;
  /** Registers a live channel with the session (so close() can end it); returns the unregister function. */
  track(channel: ClientChannel): () => void;
  /** Why the session can no longer run commands, when it cannot. */
  endedReason(): string | undefined;
}

export interface RemoteCommandOptions {
  context: ExecContext;
  /** The command's own channel, just opened (listeners are attached at once, so no event is missed). */
  channel: ClientChannel;
  /** The command as the caller wrote it: results and errors name this, not the wrapped command line. */
  command: string;
  exec: ExecOptions;
  /** Whether the command line reports its PID (see exec-markers.ts): only killable commands do. */
  expectPid: boolean;
  startedAt: number;
}

/** How long a timed-out command may take to report its PID (its shell may still be starting). */
const PID_WAIT_MS = 15_000;

/**
 * running → (timeout/abort) → awaiting-pid → killing → finished; a command that
 * ends on its own goes straight from running to finished.
 */
type Phase = 'running' | 'awaiting-pid' | 'killing' | 'finished';

/**
 * One command on its own SSH "session" channel, from the open channel to its
 * result. Stdin always gets EOF, so `cat` and friends never wait forever.
 */
export class RemoteCommand {
  readonly result: Promise<ExecResult>;
  private resolve!: (result: ExecResult) => void;
  private reject!: (error: unknown) => void;
  private phase: Phase = 'running';
  private stopReason: 'timeout' | 'abort' | undefined;
  private exit: { code: number | null; signal: string | null } | undefined;
  private pidScan: PidScan;
  /** Settles once the remote kill has run: the result waits for it. */
  private killed: Promise<void> | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly stdout: OutputStream;
  private readonly stderr: OutputStream;
  private readonly untrack: () => void;
  private readonly onAbort = (): void => this.stop('abort');
  private stdinStream: NodeJS.ReadableStream | undefined;

  constructor(private readonly options: RemoteCommandOptions) {
    this.result = new Promise<ExecResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const { channel, exec } = options;
    this.untrack = options.context.track(channel);
    this.stdout = new OutputStream(exec.onStdout);
    this.stderr = new OutputStream(exec.onStderr);
    this.pidScan = startPidScan(options.expectPid);

    channel.on('data', (chunk: Buffer) => this.stdout.push(chunk));
    channel.stderr.on('data', (chunk: Buffer) => this.takeStderr(chunk));
    channel.on('exit', (code: number | null, signal?: string) => {
      this.exit = { code: code ?? null, signal: signal ?? null };
    });
    channel.on('error', () => {
      // A channel error is followed by 'close'; the result is settled there.
    });
    channel.on('close', () => this.finish());

    if (exec.stdin === undefined) channel.end();
    else if (typeof exec.stdin === 'string' || exec.stdin instanceof Uint8Array) channel.end(exec.stdin);
    else {
      // A stream (macvm vm exec -i: the CLI's own stdin) is piped; its end ends the channel's input.
      this.stdinStream = exec.stdin;
      exec.stdin.pipe(channel);
    }
    if (exec.timeoutMs !== undefined) this.timeoutTimer = setTimeout(() => this.stop('timeout'), Math.max(0, exec.timeoutMs));
    exec.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private takeStderr(chunk: Buffer): void {
    const step = scanStderr(this.pidScan, chunk);
    this.pidScan = step.scan;
    for (const text of step.stderr) this.stderr.push(text);
    if (step.decidedNow && this.phase === 'awaiting-pid') this.killAndClose();
  }

  /**
   * Closing a channel alone does not end a remote process that is neither reading
   * nor writing (sshd just closes its pipes), and the SSH "signal" request reaches only
   * the login shell (dropbear) or nothing (OpenSSH refuses it for root): either way the
   * command's children live on. So the whole process tree is killed from a second
   * channel, using the PID the command reported, while its root still exists. The
   * result settles only once that kill has run (or after a grace period), so callers
   * can rely on the processes being gone, and so the next command never overlaps it.
   */
  private stop(reason: 'timeout' | 'abort'): void {
    if (this.phase === 'finished' || this.stopReason) return;
    this.stopReason = reason;
    if (this.pidScan.kind === 'decided') {
      this.killAndClose();
      return;
    }
    // The login shell has not printed its PID yet (slow shell start-up files): closing
    // now would orphan the command, so wait for the PID, within a bound.
    this.phase = 'awaiting-pid';
    this.graceTimer = setTimeout(() => this.killAndClose(), PID_WAIT_MS);
    this.graceTimer.unref();
  }

  private killAndClose(): void {
    if (this.phase === 'finished' || this.phase === 'killing') return;
    this.phase = 'killing';
    const { channel, context } = this.options;
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      channel.destroy();
      this.finish();
    }, KILL_GRACE_MS * 2);
    this.graceTimer.unref();
    const pid = this.pidScan.kind === 'decided' ? this.pidScan.pid : undefined;
    const tree = pid === undefined ? Promise.resolve() : killRemoteTree(context.client, pid);
    this.killed = tree.then(() => {
      if (this.phase === 'finished') return;
      // The only try when the PID is unknown; after a tree kill, a no-op.
      sendSignal(channel, 'KILL');
      channel.close();
    });
  }

  private finish(): void {
    if (this.phase === 'finished') return;
    this.phase = 'finished';
    const { command, exec, startedAt } = this.options;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.graceTimer);
    exec.signal?.removeEventListener('abort', this.onAbort);
    // A command that ended without reading all of its input must not keep the stream flowing into a closed channel.
    this.stdinStream?.unpipe(this.options.channel);
    this.untrack();
    const flushed = endPidScan(this.pidScan);
    this.pidScan = flushed.scan;
    for (const text of flushed.stderr) this.stderr.push(text);
    const timedOut = this.stopReason === 'timeout';
    const exitCode = this.exit?.code ?? null;
    const result: ExecResult = {
      command,
      stdout: this.stdout.end(),
      stderr: this.stderr.end(),
      exitCode,
      signal: this.exit?.signal ?? null,
      durationMs: Date.now() - startedAt,
      failed: timedOut || exitCode !== 0,
      timedOut,
    };
    if (this.killed) void this.killed.then(() => this.settle(result));
    else this.settle(result);
  }

  private settle(result: ExecResult): void {
    const { exec, context } = this.options;
    if (this.stopReason === 'abort') this.reject(abortReason(exec.signal!));
    else if (this.stopReason === 'timeout') {
      if (exec.reject === false) this.resolve(result);
      else this.reject(timeoutError(result, exec.timeoutMs!));
    } else if (this.exit === undefined) this.reject(cutOffError(result, context.endedReason()));
    else if (result.failed && exec.reject !== false) this.reject(failedError(result));
    else this.resolve(result);
  }
}
