import { abortReason, channelRefusedError, connectionGoneError } from './exec-errors.js';
import { withPidReport } from './exec-markers.js';
import { RemoteCommand, type ExecContext } from './remote-command.js';
import { wrapCommand } from './shell-quote.js';
import type { ExecOptions, ExecResult } from './types.js';

export type { ExecContext } from './remote-command.js';

export interface ExecRequest {
  context: ExecContext;
  command: string;
  options?: ExecOptions;
}

/**
 * A channel the server closed before answering the exec request, or that refused it: nothing
 * ran, so the command may go again on a new channel. Dropbear 2022.83 to 2024.85 (Debian 12's,
 * so linux-test's; also many embedded machines behind the ssh provider) closes a new session
 * channel before reading its exec request when another channel's command exits at that moment
 * (mkj/dropbear#321, fixed in 2024.86).
 */
const EXEC_NOT_STARTED = new Set(['Unable to exec', 'Channel is not open']);
/**
 * Once it happens, dropbear closes every new channel for as long as other channels' commands
 * keep exiting (hundreds of ms), so the waits grow: 50, 150, 450, 1350, 4050 ms. With 40
 * commands at once on linux-test, 10–50 % failed without them and none with them.
 */
const EXEC_ATTEMPTS = 6;
const retryDelayMs = (attempt: number) => 50 * 3 ** (attempt - 1);

/**
 * Runs one command on its own SSH channel (see RemoteCommand). As in execa, one final
 * newline is stripped from stdout/stderr in the result; callbacks see raw output.
 */
export function execOverSsh({ context, command, options = {} }: ExecRequest): Promise<ExecResult> {
  // Only a command that may have to be killed pays for reporting its PID.
  const expectPid = options.timeoutMs !== undefined || options.signal !== undefined;
  const wrapped = wrapCommand(command, options);
  const wire = expectPid ? withPidReport(wrapped) : wrapped;
  const startedAt = Date.now();
  return new Promise<ExecResult>((resolve, reject) => {
    const attempt = (n: number): void => {
      if (options.signal?.aborted) {
        reject(abortReason(options.signal));
        return;
      }
      try {
        context.client.exec(wire, (error, channel) => {
          if (error) {
            if (EXEC_NOT_STARTED.has(error.message) && n < EXEC_ATTEMPTS && context.endedReason() === undefined) {
              setTimeout(() => attempt(n + 1), retryDelayMs(n));
              return;
            }
            reject(channelRefusedError(command, error));
            return;
          }
          // Built in this callback, not after an await: ssh2 may emit 'exit' and 'close'
          // right after it returns, and those events are not buffered.
          new RemoteCommand({ context, channel, command, exec: options, expectPid, startedAt }).result.then(resolve, reject);
        });
      } catch (error) {
        reject(connectionGoneError(command, context.endedReason(), error));
      }
    };
    attempt(1);
  });
}
