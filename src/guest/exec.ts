import { StringDecoder } from 'node:string_decoder';
import type { Client, ClientChannel } from 'ssh2';
import { MacvmError, messageOf } from '../errors.js';
import { quoteShellWord, wrapCommand } from './shell-quote.js';
import type { ExecOptions, ExecResult } from './types.js';

/**
 * One command on its own SSH "session" channel. Output is collected as bytes and
 * decoded once at the end, so multi-byte characters split across packets survive;
 * streaming callbacks get text from their own decoders. As in execa, one final
 * newline is stripped from stdout/stderr in the result (callbacks see raw output).
 */
export interface ExecContext {
  client: Client;
  /** Registers a live channel with the session (so close() can end it); returns the unregister function. */
  track(channel: ClientChannel): () => void;
  /** Why the session can no longer run commands, when it cannot. */
  endedReason(): string | undefined;
}

/** After asking the remote process to die, how long to wait for the server to close the channel. */
const KILL_GRACE_MS = 3_000;
/** How long a timed-out command may take to report its PID (its shell may still be starting). */
const PID_WAIT_MS = 15_000;
/** How much output the error message quotes. */
const MESSAGE_TAIL_LINES = 20;
/** How much output an error keeps in `details` (it may be printed and serialised). */
const DETAILS_MAX_CHARS = 64 * 1024;

/**
 * Commands that may have to be killed first report their login shell's PID on stderr
 * (a line removed before anyone sees stderr). That PID is the root of the command's
 * process tree; see killRemoteTree() for why the tree, not a process group, is killed.
 */
const PID_MARKER = 'macvm-pid:';
const PID_SCAN_MAX = 16 * 1024;

export function execOverSsh(context: ExecContext, command: string, options: ExecOptions = {}): Promise<ExecResult> {
  const killable = options.timeoutMs !== undefined || options.signal !== undefined;
  const wrapped = wrapCommand(command, options);
  const wire = killable ? `printf '${PID_MARKER}%s\\n' "$$" >&2; ${wrapped}` : wrapped;
  const startedAt = Date.now();
  return new Promise<ExecResult>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(abortReason(options.signal));
      return;
    }
    const opened = (error: Error | undefined, channel: ClientChannel): void => {
      if (error) {
        reject(
          new MacvmError('MACVM_SSH_CONNECT_FAILED', `The guest refused a channel for \`${command}\`: ${messageOf(error)}.`, {
            hint: 'The connection may be going away (a VM that stopped is reported as MACVM_VM_STOPPED by the MacVM); otherwise the server limits channels per connection (OpenSSH MaxSessions, default 10): run fewer commands at once.',
            details: { command },
            cause: error,
          }),
        );
        return;
      }
      run(context, channel, command, options, killable, startedAt, resolve, reject);
    };
    try {
      context.client.exec(wire, opened);
    } catch (error) {
      reject(
        new MacvmError('MACVM_SESSION_CLOSED', `Cannot run \`${command}\`: the SSH connection is gone (${context.endedReason() ?? messageOf(error)}).`, {
          hint: 'The VM may have stopped; reconnect or start a new one.',
          details: { command },
          cause: error,
        }),
      );
    }
  });
}

function run(
  context: ExecContext,
  channel: ClientChannel,
  command: string,
  options: ExecOptions,
  expectPid: boolean,
  startedAt: number,
  resolve: (result: ExecResult) => void,
  reject: (error: unknown) => void,
): void {
  const untrack = context.track(channel);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const stdoutText = new StringDecoder('utf8');
  const stderrText = new StringDecoder('utf8');
  let exitCode: number | null | undefined;
  let exitSignal: string | null = null;
  let stopped: 'timeout' | 'abort' | undefined;
  let killing = false;
  /** Settles once the remote kill has run: the result waits for it. */
  let killed: Promise<void> | undefined;
  let killWhenPidKnown: (() => void) | undefined;
  let finished = false;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let graceTimer: NodeJS.Timeout | undefined;

  channel.on('data', (chunk: Buffer) => {
    stdout.push(chunk);
    if (options.onStdout) emit(options.onStdout, stdoutText.write(chunk));
  });
  let remotePid: number | undefined;
  let pidLine: Buffer | undefined = expectPid ? Buffer.alloc(0) : undefined;
  const takeStderr = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    stderr.push(chunk);
    if (options.onStderr) emit(options.onStderr, stderrText.write(chunk));
  };
  // Shell start-up files may print to stderr before the marker, so complete lines
  // are scanned (and passed on) until the marker shows up or the scan budget runs out.
  let scanned = 0;
  channel.stderr.on('data', (chunk: Buffer) => {
    if (pidLine === undefined) {
      takeStderr(chunk);
      return;
    }
    pidLine = Buffer.concat([pidLine, chunk]);
    for (let newline = pidLine.indexOf(0x0a); newline >= 0 && pidLine !== undefined; newline = pidLine?.indexOf(0x0a) ?? -1) {
      const line = pidLine.subarray(0, newline).toString('latin1');
      const match = line.startsWith(PID_MARKER) ? /^\d+$/.exec(line.slice(PID_MARKER.length)) : null;
      const rest: Buffer = pidLine.subarray(newline + 1);
      scanned += newline + 1;
      if (match) {
        remotePid = Number(match[0]);
        pidLine = undefined;
        takeStderr(rest);
        killWhenPidKnown?.();
        return;
      }
      takeStderr(pidLine.subarray(0, newline + 1));
      pidLine = rest;
    }
    if (pidLine !== undefined && scanned + pidLine.length > PID_SCAN_MAX) {
      const text = pidLine;
      pidLine = undefined;
      takeStderr(text);
      killWhenPidKnown?.();
    }
  });

  channel.on('exit', (code: number | null, signal?: string) => {
    exitCode = code ?? null;
    exitSignal = signal ?? null;
  });
  channel.on('error', () => {
    // A channel error is followed by 'close'; the result is settled there.
  });
  channel.on('close', finish);

  // The command always gets EOF on stdin, so `cat` and friends never wait forever.
  if (options.stdin !== undefined) channel.end(options.stdin);
  else channel.end();

  if (options.timeoutMs !== undefined) {
    timeoutTimer = setTimeout(() => stop('timeout'), Math.max(0, options.timeoutMs));
  }
  const onAbort = (): void => stop('abort');
  options.signal?.addEventListener('abort', onAbort, { once: true });

  /**
   * Closing a channel alone does not end a remote process that is neither reading
   * nor writing (sshd just closes its pipes), and the SSH "signal" request reaches only
   * the login shell (dropbear) or nothing (OpenSSH refuses it for root): either way the
   * command's children live on. So the whole process tree is killed from a second
   * channel, using the PID the command reported, while its root still exists. The
   * result settles only once that kill has run (or after a grace period), so callers
   * can rely on the processes being gone, and so the next command never overlaps it.
   */
  function stop(reason: 'timeout' | 'abort'): void {
    if (finished || stopped) return;
    stopped = reason;
    if (remotePid !== undefined || pidLine === undefined) {
      killAndClose();
      return;
    }
    // The login shell has not printed its PID yet (slow shell start-up files): closing
    // now would orphan the command, so wait for the PID, within a bound.
    killWhenPidKnown = killAndClose;
    graceTimer = setTimeout(killAndClose, PID_WAIT_MS);
    graceTimer.unref();
  }

  function killAndClose(): void {
    if (finished || killing) return;
    killing = true;
    killWhenPidKnown = undefined;
    clearTimeout(graceTimer);
    graceTimer = setTimeout(() => {
      channel.destroy();
      finish();
    }, KILL_GRACE_MS * 2);
    graceTimer.unref();
    const tree = remotePid === undefined ? Promise.resolve() : killRemoteTree(context.client, remotePid);
    killed = tree.then(() => {
      if (finished) return;
      // The only try when the PID is unknown; after a tree kill, a no-op.
      sendSignal(channel, 'KILL');
      channel.close();
    });
  }

  function finish(): void {
    if (finished) return;
    finished = true;
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    options.signal?.removeEventListener('abort', onAbort);
    untrack();
    if (pidLine !== undefined) {
      // The command ended before a full marker line arrived: that text is real stderr.
      const partial = pidLine;
      pidLine = undefined;
      takeStderr(partial);
    }
    if (options.onStdout) emit(options.onStdout, stdoutText.end());
    if (options.onStderr) emit(options.onStderr, stderrText.end());
    const result: ExecResult = {
      command,
      stdout: stripFinalNewline(Buffer.concat(stdout).toString('utf8')),
      stderr: stripFinalNewline(Buffer.concat(stderr).toString('utf8')),
      exitCode: exitCode ?? null,
      signal: exitSignal,
      durationMs: Date.now() - startedAt,
      failed: false,
      timedOut: stopped === 'timeout',
    };
    result.failed = result.timedOut || result.exitCode !== 0;
    if (killed) void killed.then(() => settle(result));
    else settle(result);
  }

  function settle(result: ExecResult): void {
    if (stopped === 'abort') {
      reject(abortReason(options.signal!));
      return;
    }
    if (stopped === 'timeout') {
      if (options.reject === false) resolve(result);
      else reject(timeoutError(result, options.timeoutMs!));
      return;
    }
    if (exitCode === undefined) {
      // The channel closed without an exit status: the connection (or session) ended under it.
      reject(
        new MacvmError('MACVM_SESSION_CLOSED', `\`${command}\` was cut off: the SSH connection ended before the command finished (${context.endedReason() ?? 'no exit status received'}).`, {
          hint: 'The VM may have stopped, or the session was closed while the command ran.',
          details: outputDetails(result),
        }),
      );
      return;
    }
    if (result.failed && options.reject !== false) {
      reject(failedError(result));
      return;
    }
    resolve(result);
  }
}

/**
 * ssh2's channel.signal() sends nothing once our side has sent EOF (it checks that
 * the channel is still writable), and exec always sends EOF after stdin. A signal
 * request is legal on a half-closed channel (RFC 4254 §6.9 only needs it open), so
 * it goes out through the protocol object directly.
 */
function sendSignal(channel: ClientChannel, name: string): void {
  const internals = channel as unknown as {
    outgoing?: { id?: number; state?: string };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const id = internals.outgoing?.id;
  const protocol = internals._client?._protocol;
  try {
    if (id !== undefined && (internals.outgoing?.state === 'open' || internals.outgoing?.state === 'eof') && typeof protocol?.signal === 'function') protocol.signal(id, name);
    else channel.signal(name);
  } catch {
    // The connection is going away; closing the channel is all that is left to do.
  }
}

/**
 * Kills the process tree rooted at `pid` (the command's login shell). Not a process
 * group: dropbear puts every command of a connection in ONE group led by its own
 * per-connection process, so killing "the group" either misses (the shell leads no
 * group) or takes the SSH connection down with it. The tree is found from `ps` and
 * stopped first, repeatedly until it stops growing, so nothing can fork or escape to
 * init between the listing and the kill; then all of it is killed.
 */
function killRemoteTree(client: Client, pid: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, KILL_GRACE_MS);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    try {
      // Run by /bin/sh explicitly: macOS's login shell is zsh, which does not split $tree into words.
      client.exec(`exec /bin/sh -c ${quoteShellWord(KILL_TREE_SCRIPT)} macvm-kill ${pid}`, (error, channel) => {
        if (error) return done();
        channel.on('close', done);
        channel.on('error', done);
        channel.resume();
        channel.stderr.resume();
        channel.end();
      });
    } catch {
      done();
    }
  });
}

/**
 * POSIX sh, for busybox (ash, ps, awk) and macOS (/bin/sh, BSD ps, awk) alike: both
 * know `ps -A -o pid= -o ppid=`. $1 is the root PID; a root already gone yields an
 * empty tree, so a stale PID never kills anything.
 */
const KILL_TREE_SCRIPT = `root=$1
tree() {
  ps -A -o pid= -o ppid= 2>/dev/null | awk -v root="$root" '
    { parent[$1] = $2 }
    END {
      if (!(root in parent)) exit
      keep[root] = 1
      do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
      for (p in keep) print p
    }' | sort -n
}
before=; now=$(tree); rounds=0
while [ -n "$now" ] && [ "$now" != "$before" ] && [ "$rounds" -lt 50 ]; do
  kill -STOP $now 2>/dev/null
  before=$now; now=$(tree); rounds=$((rounds + 1))
done
[ -n "$now" ] && kill -KILL $now 2>/dev/null
true`;

function emit(callback: (chunk: string) => void, text: string): void {
  if (text.length > 0) callback(text);
}

function stripFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The command was aborted.', 'AbortError');
}

function failedError(result: ExecResult): MacvmError {
  const how = result.signal ? `was killed by ${result.signal}` : `failed with exit code ${result.exitCode}`;
  const tail = lastLines(result.stderr || result.stdout);
  return new MacvmError('MACVM_EXEC_FAILED', `Command ${how}: ${result.command}${tail ? `\n${tail}` : ''}`, {
    hint: 'Pass { reject: false } to get the result of a failing command instead of an error.',
    details: outputDetails(result),
  });
}

function timeoutError(result: ExecResult, timeoutMs: number): MacvmError {
  const tail = lastLines(result.stderr || result.stdout);
  return new MacvmError('MACVM_EXEC_TIMEOUT', `Command timed out after ${timeoutMs} ms and was killed: ${result.command}${tail ? `\n${tail}` : ''}`, {
    hint: 'Raise timeoutMs if the command is just slow; the partial output is in error.details.',
    details: { ...outputDetails(result), timeoutMs },
  });
}

function outputDetails(result: ExecResult): Record<string, unknown> {
  return {
    command: result.command,
    exitCode: result.exitCode,
    signal: result.signal,
    timedOut: result.timedOut,
    durationMs: result.durationMs,
    stdout: clipStart(result.stdout),
    stderr: clipStart(result.stderr),
  };
}

function lastLines(text: string): string {
  const lines = text.trimEnd().split('\n');
  const tail = lines.slice(-MESSAGE_TAIL_LINES);
  return (lines.length > tail.length ? ['…', ...tail] : tail)
    .filter((line) => line.length > 0)
    .map((line) => `  ${line}`)
    .join('\n');
}

/** Keeps the end of long output: the end is where failures explain themselves. */
function clipStart(text: string): string {
  return text.length > DETAILS_MAX_CHARS ? `…${text.slice(-DETAILS_MAX_CHARS)}` : text;
}
