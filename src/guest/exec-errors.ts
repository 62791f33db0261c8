import { MacvmError, messageOf } from '../errors.js';
import type { ExecResult } from './types.js';

/** How much output the error message quotes. */
const MESSAGE_TAIL_LINES = 20;
/** How much output an error keeps in `details` (it may be printed and serialised). */
const DETAILS_MAX_CHARS = 64 * 1024;

/** What an aborted command rejects with: the signal's own reason, as fetch() does. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The command was aborted.', 'AbortError');
}

export function channelRefusedError(command: string, cause: Error): MacvmError {
  return new MacvmError('MACVM_SSH_CONNECT_FAILED', `The guest refused a channel for \`${command}\`: ${messageOf(cause)}.`, {
    hint: 'The connection may be going away (a VM that stopped is reported as MACVM_VM_STOPPED by the MacVM); otherwise the server limits channels per connection (OpenSSH MaxSessions, default 10): run fewer commands at once.',
    details: { command },
    cause,
  });
}

/** ssh2 threw instead of opening a channel: the connection is gone. `endedReason` is the session's own account of why. */
export function connectionGoneError(command: string, endedReason: string | undefined, cause: unknown): MacvmError {
  return new MacvmError('MACVM_SESSION_CLOSED', `Cannot run \`${command}\`: the SSH connection is gone (${endedReason ?? messageOf(cause)}).`, {
    hint: 'The VM may have stopped; reconnect or start a new one.',
    details: { command },
    cause,
  });
}

/** The channel closed without an exit status: the connection (or session) ended under the command. */
export function cutOffError(result: ExecResult, reason: string | undefined): MacvmError {
  return new MacvmError('MACVM_SESSION_CLOSED', `\`${result.command}\` was cut off: the SSH connection ended before the command finished (${reason ?? 'no exit status received'}).`, {
    hint: 'The VM may have stopped, or the session was closed while the command ran.',
    details: outputDetails(result),
  });
}

export function failedError(result: ExecResult): MacvmError {
  const how = result.signal ? `was killed by ${result.signal}` : `failed with exit code ${result.exitCode}`;
  return new MacvmError('MACVM_EXEC_FAILED', `Command ${how}: ${result.command}${quotedTail(result)}`, {
    hint: 'Pass { reject: false } to get the result of a failing command instead of an error.',
    details: outputDetails(result),
  });
}

export function timeoutError(result: ExecResult, timeoutMs: number): MacvmError {
  return new MacvmError('MACVM_EXEC_TIMEOUT', `Command timed out after ${timeoutMs} ms and was killed: ${result.command}${quotedTail(result)}`, {
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

/** The last lines of stderr (or stdout when stderr is empty), indented, on lines after the message. */
function quotedTail(result: ExecResult): string {
  const lines = (result.stderr || result.stdout).trimEnd().split('\n');
  const tail = lines.slice(-MESSAGE_TAIL_LINES);
  const text = (lines.length > tail.length ? ['…', ...tail] : tail)
    .filter((line) => line.length > 0)
    .map((line) => `  ${line}`)
    .join('\n');
  return text ? `\n${text}` : '';
}

/** Keeps the end of long output: the end is where failures explain themselves. */
function clipStart(text: string): string {
  return text.length > DETAILS_MAX_CHARS ? `…${text.slice(-DETAILS_MAX_CHARS)}` : text;
}
