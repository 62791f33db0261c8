import { MacvmError } from '../errors.js';
import { assertOptions, type Rule } from '../util/validate.js';

/** A shell command, run the same way on host and guest (`sh -c`), timed inside each. */
export interface CommandWorkload {
  kind: 'command';
  name: string;
  command: string;
  /** Working directory and environment on both sides... */
  cwd?: string;
  env?: Record<string, string>;
  /** ...unless the guest needs its own (its checkout lives elsewhere). */
  guest?: { cwd?: string; env?: Record<string, string> };
  /** Kills a round that runs longer (default 10 min). */
  timeoutMs?: number;
}

/** A JS function, run under tinybench by the same node binary on host and guest. */
export interface FunctionWorkload {
  kind: 'function';
  name: string;
  /** fn.toString(): the function travels as text, so it must not use outer variables. */
  source: string;
  /** tinybench time budget per round, ms (default 500). */
  timeMs: number;
  /** tinybench minimum calls per round (default 10). */
  minIterations: number;
}

export type Workload = CommandWorkload | FunctionWorkload;

export interface CommandOptions {
  /** Name in tables and history (default: the command itself). */
  name?: string;
  cwd?: string;
  env?: Record<string, string>;
  guest?: { cwd?: string; env?: Record<string, string> };
  timeoutMs?: number;
}

export interface FunctionOptions {
  timeMs?: number;
  iterations?: number;
}

/** What the `(b) => { ... }` callback of benchMacVM receives. */
export interface BenchBuilder {
  command(command: string, options?: CommandOptions): void;
  /**
   * A JS function. It is sent as source text, so it must be self-contained; `require` is
   * available for node built-ins: `b.fn('sha256 1 MiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(1 << 20)).digest())`.
   */
  fn(name: string, fn: (...args: never[]) => unknown, options?: FunctionOptions): void;
}

/** Checked like every option object passed in code: `{ timeout }` for `timeoutMs` must not pass unnoticed. */
const COMMAND_OPTIONS_RULE: Rule = {
  kind: 'object',
  keys: {
    name: { kind: 'string', nonEmpty: true },
    cwd: { kind: 'string', nonEmpty: true },
    env: { kind: 'record', value: { kind: 'string' } },
    guest: { kind: 'object', keys: { cwd: { kind: 'string', nonEmpty: true }, env: { kind: 'record', value: { kind: 'string' } } } },
    timeoutMs: { kind: 'number', min: 0, exclusiveMin: true },
  },
};
const FUNCTION_OPTIONS_RULE: Rule = { kind: 'object', keys: { timeMs: { kind: 'number', min: 0, exclusiveMin: true }, iterations: { kind: 'integer', min: 1 } } };

export function collectWorkloads(define: (b: BenchBuilder) => void): Workload[] {
  const workloads: Workload[] = [];
  const add = (workload: Workload) => {
    if (!workload.name.trim()) throw new MacvmError('MACVM_BENCH_INVALID', 'A benchmark workload needs a non-empty name.');
    if (workloads.some((w) => w.name === workload.name)) {
      throw new MacvmError('MACVM_BENCH_INVALID', `Two workloads are named "${workload.name}"; names identify workloads in history and comparisons.`, {
        hint: 'Give one of them another name (b.command(cmd, { name }) or the first argument of b.fn).',
      });
    }
    workloads.push(workload);
  };
  define({
    command(command, options = {}) {
      if (typeof command !== 'string' || !command.trim()) throw new MacvmError('MACVM_BENCH_INVALID', 'b.command() needs a non-empty shell command.');
      assertOptions(options, COMMAND_OPTIONS_RULE, `b.command(${JSON.stringify(command)}) options`);
      add({ kind: 'command', name: options.name ?? command, command, cwd: options.cwd, env: options.env, guest: options.guest, timeoutMs: options.timeoutMs });
    },
    fn(name, fn, options = {}) {
      if (typeof fn !== 'function') throw new MacvmError('MACVM_BENCH_INVALID', `b.fn("${name}") needs a function.`);
      assertOptions(options, FUNCTION_OPTIONS_RULE, `b.fn(${JSON.stringify(name)}) options`);
      add({ kind: 'function', name, source: functionSource(name, fn), timeMs: options.timeMs ?? 500, minIterations: options.iterations ?? 10 });
    },
  });
  if (workloads.length === 0) {
    throw new MacvmError('MACVM_BENCH_INVALID', 'The benchmark defines no workloads.', { hint: 'Call b.command(...) or b.fn(...) in the benchMacVM callback.' });
  }
  return workloads;
}

/** The function's text, checked to be an expression that can be rebuilt on the other side. */
export function functionSource(name: string, fn: (...args: never[]) => unknown): string {
  const source = fn.toString();
  const fail = (why: string) =>
    new MacvmError('MACVM_BENCH_INVALID', `b.fn("${name}"): ${why}`, {
      hint: 'Pass an arrow function or a function expression that uses no variables from outside it (require() is available inside).',
    });
  if (/\{\s*\[native code\]\s*\}$/.test(source)) throw fail('a built-in or bound function has no source to send to the guest.');
  try {
    new Function(`return (${source});`);
  } catch {
    // Method shorthand ("run() { ... }") prints without the `function` keyword.
    throw fail('its source text is not a function expression (method shorthand?).');
  }
  return source;
}
