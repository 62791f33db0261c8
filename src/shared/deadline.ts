import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError } from '../errors.js';

/**
 * ONE deadline covers clone → boot → address → SSH → ready. Each step names
 * itself with `step()`, so when time runs out the error says which step hung.
 * The AbortSignal lets long operations (connect retries, waits) stop promptly.
 */
export class Deadline {
  readonly startedAt = Date.now();
  readonly at: number;
  private currentStep = 'start';
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(readonly totalMs: number) {
    if (!Number.isFinite(totalMs) || totalMs <= 0) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `A deadline must be a positive number of milliseconds, got ${totalMs}.`);
    }
    this.at = this.startedAt + totalMs;
    this.timer = setTimeout(() => this.controller.abort(this.error()), totalMs);
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get step(): string {
    return this.currentStep;
  }

  get expired(): boolean {
    return Date.now() >= this.at;
  }

  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  elapsedMs(): number {
    return Date.now() - this.startedAt;
  }

  /** Marks the step now running; the error names it if the deadline passes during it. */
  enter(step: string): void {
    this.currentStep = step;
  }

  /** Stops the timer once the chain is done, so a finished deadline never fires. */
  finish(): void {
    clearTimeout(this.timer);
  }

  /** `consoleLog`: where the guest's console log was kept, when it was (the clone is gone by then). */
  error(extra: { consoleTail?: string; consoleLog?: string } = {}): MacvmError {
    const seconds = (this.totalMs / 1000).toFixed(1);
    const tail = extra.consoleTail?.trim();
    const readLog = extra.consoleLog ? `read the console log (${extra.consoleLog})` : 'read the console log';
    return new MacvmError(
      'MACVM_DEADLINE_EXCEEDED',
      `The VM was not ready within ${seconds}s: step "${this.currentStep}" did not finish.` +
        (tail ? `\nLast console lines:\n${indent(tail)}` : ''),
      {
        hint: `Raise \`deadline\` for this suite (or timeouts.ready in macvm.config.ts) if the host is slow, or ${readLog} to see where the guest stopped.`,
        details: { step: this.currentStep, deadlineMs: this.totalMs, elapsedMs: this.elapsedMs(), consoleTail: tail ?? '', ...(extra.consoleLog ? { consoleLog: extra.consoleLog } : {}) },
      },
    );
  }

  throwIfExpired(): void {
    if (this.expired) throw this.error();
  }

  /** Runs `work` as `step`, rejecting with the deadline error if it is not done in time. */
  async run<T>(step: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.enter(step);
    this.throwIfExpired();
    const signal = this.signal;
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(this.error());
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([work(signal), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Sleeps, but never past the deadline. */
  async sleep(ms: number): Promise<void> {
    await sleep(Math.min(ms, this.remainingMs()));
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}
