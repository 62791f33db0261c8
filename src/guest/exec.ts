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
    if (options.signal?.aborted) {
      reject(abortReason(options.signal));
      return;
    }
    try {
      context.client.exec(wire, (error, channel) => {
        if (error) {
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
  });
}
