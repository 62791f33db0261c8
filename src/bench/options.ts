import { assertOptions, type Rule } from '../util/validate.js';

/**
 * The rules for a benchmark's own options, fed to the one validation engine
 * (src/util/validate.ts), so a typo or a bad value is one MACVM_BAD_ARGUMENT naming the key
 * before anything runs. `rounds` and `warmup` take "auto" or a number; the engine has no
 * union rule, so the rule is picked by the value's type — a string must be "auto" (with a
 * did-you-mean), anything else a whole number.
 */
export function benchOptionRules(options: Record<string, unknown>): Record<string, Rule> {
  const autoOr = (value: unknown, number: Rule): Rule => (typeof value === 'string' ? { kind: 'enum', values: ['auto'] } : number);
  return {
    rounds: autoOr(options.rounds, { kind: 'integer', min: 1 }),
    warmup: autoOr(options.warmup, { kind: 'integer', min: 0 }),
    /** Relative half-width of the ratio's 95 % CI, a fraction: 0.02 = ±2 %. */
    precision: { kind: 'number', min: 0, max: 1, exclusiveMin: true },
    /** ms per workload, warm-up included. */
    maxTime: { kind: 'number', min: 0, exclusiveMin: true },
    baseline: typeof options.baseline === 'boolean' ? { kind: 'enum', values: ['false'] } : { kind: 'string', nonEmpty: true },
    failOnRegression: { kind: 'number', min: 0 },
    metric: { kind: 'enum', values: ['ratio', 'guest'] },
    reportsDir: { kind: 'string', nonEmpty: true },
    historyFile: { kind: 'string', nonEmpty: true },
    guestDir: { kind: 'string', nonEmpty: true },
    guestNodeDir: { kind: 'string', nonEmpty: true },
    log: { kind: 'function' },
  };
}

/** Checks a benchmark's options; `extra` adds the keys of whoever wraps it (benchMacVM's VM options). */
export function assertBenchOptions(options: object | undefined, label: string, extra: Record<string, Rule> = {}): void {
  const value = { ...(options ?? {}) } as Record<string, unknown>;
  // `baseline: false` is valid; the enum rule above wants it as text.
  if (value.baseline === false) value.baseline = 'false';
  assertOptions(value, { kind: 'object', keys: { ...benchOptionRules(value), ...extra } }, label);
}

/** The sampling subset, checked where runBench is called directly. */
export function assertSamplingOptions(options: { rounds?: unknown; warmup?: unknown; precision?: unknown; maxTime?: unknown }, label: string): void {
  const { rounds, warmup, precision, maxTime } = options;
  assertOptions({ rounds, warmup, precision, maxTime }, { kind: 'object', keys: benchOptionRules({ rounds, warmup }) }, label);
}
