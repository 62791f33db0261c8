import { readFile } from 'node:fs/promises';
import { MacvmError } from '../errors.js';
import type { GuestSession } from '../guest/types.js';
import type { Deadline } from '../shared/deadline.js';
import type { RunningVM } from '../vm/types.js';

/**
 * What a wait strategy can look at: the booted VM (console log), an open SSH session, and
 * the one deadline of the whole ready chain. Strategies compose, after Testcontainers.
 */
export interface WaitContext {
  vm: RunningVM;
  session: GuestSession;
  deadline: Deadline;
}

export interface WaitStrategy {
  /** Shown as the step name when the deadline passes: `wait: forLog(/ready/)`. */
  readonly description: string;
  wait(context: WaitContext): Promise<void>;
}

/**
 * The guest accepts an SSH login with the image's credentials. The default.
 *
 * The ready chain connects and authenticates before any strategy runs, so the session handed in
 * is the proof, and no command is run: one would add a channel open and a process start in the
 * guest (~100 ms under TCG on a loaded host) and prove little the login has not — sshd (OpenSSH
 * and dropbear alike) refuses a login whose shell is missing — while the first command a test
 * runs reports any failure with its own error. `forCommand('true')` asks for a command outright.
 */
export function forSsh(): WaitStrategy {
  return {
    description: 'forSsh()',
    async wait({ session }) {
      if (session.closed) {
        throw new MacvmError('MACVM_SSH_CONNECT_FAILED', `The guest closed the SSH connection to ${session.host}:${session.port} right after the login.`);
      }
    },
  };
}

/** A line of the console log matches `pattern` (at least `times` times). */
export function forLog(pattern: RegExp | string, options: { times?: number; intervalMs?: number } = {}): WaitStrategy {
  const regex = typeof pattern === 'string' ? new RegExp(escapeRegExp(pattern), 'g') : new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
  const times = options.times ?? 1;
  return {
    description: `forLog(${regex})${times > 1 ? ` ×${times}` : ''}`,
    async wait({ vm, deadline }) {
      if (!vm.consoleLogPath) {
        throw new MacvmError('MACVM_NOT_SUPPORTED', 'This provider has no console log, so forLog() cannot be used.');
      }
      for (;;) {
        const text = await readFile(vm.consoleLogPath, 'utf8').catch(() => '');
        if ((text.match(regex)?.length ?? 0) >= times) return;
        deadline.throwIfExpired();
        await deadline.sleep(options.intervalMs ?? 100);
      }
    },
  };
}

/** `command` exits 0 in the guest; retried until it does or the deadline passes. */
export function forCommand(command: string, options: { intervalMs?: number; attemptTimeoutMs?: number } = {}): WaitStrategy {
  return {
    description: `forCommand(${JSON.stringify(command)})`,
    async wait({ session, deadline }) {
      for (;;) {
        const result = await session
          .exec(command, { reject: false, timeoutMs: Math.min(options.attemptTimeoutMs ?? 10_000, Math.max(1, deadline.remainingMs())) })
          .catch(() => undefined);
        if (result?.exitCode === 0) return;
        deadline.throwIfExpired();
        await deadline.sleep(options.intervalMs ?? 250);
      }
    },
  };
}

/** Every strategy, in order. */
export function forAll(strategies: WaitStrategy[]): WaitStrategy {
  return {
    description: `forAll([${strategies.map((s) => s.description).join(', ')}])`,
    async wait(context) {
      for (const strategy of strategies) {
        context.deadline.enter(`wait: ${strategy.description}`);
        await strategy.wait(context);
      }
    },
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
