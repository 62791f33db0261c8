/**
 * One validation engine for everything users hand macvm: macvm.config.ts, options passed in
 * code (withMacVM, startMacVM, toMatchImageSnapshot) and provider settings. A rule describes
 * a shape; checkValue walks a value once and collects every problem with its key path and a
 * did-you-mean for typos, so one run shows all the mistakes.
 */
import { MacvmError } from '../errors.js';
import { parseSizeBytes } from './size.js';

export type Rule =
  | { kind: 'object'; keys: Record<string, Rule>; required?: string[]; secret?: boolean }
  | { kind: 'record'; keyPattern?: RegExp; keyDescription?: string; value: Rule }
  /** secret: a bad value is never echoed in the message (tokens, passwords). */
  | { kind: 'string'; nonEmpty?: boolean; secret?: boolean }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'integer'; min: number; max?: number }
  | { kind: 'number'; min: number; max?: number; exclusiveMin?: boolean }
  | { kind: 'boolean' }
  | { kind: 'size' }
  | { kind: 'array'; item: Rule }
  | { kind: 'function' }
  /** Checked elsewhere (a wait strategy, a provider object): present is enough. */
  | { kind: 'any' };

export interface ConfigProblem {
  /** Dotted key path, e.g. "slots.qemu" or "images.sonoma.ssh.user". */
  path: string;
  message: string;
}

/** Walks `value` against `rule`, returning every problem found (empty when valid). */
export function checkValue(value: unknown, rule: Rule, path: string, problems: ConfigProblem[] = []): ConfigProblem[] {
  const fail = (expected: string, suggestion?: string) =>
    problems.push({ path, message: `${path} must be ${expected}, got ${'secret' in rule && rule.secret ? 'a value not shown here (a secret)' : show(value)}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}` });
  switch (rule.kind) {
    case 'object': {
      if (!isPlainObject(value)) {
        fail('an object');
        break;
      }
      for (const key of rule.required ?? []) {
        if (value[key] === undefined) problems.push({ path: join(path, key), message: `${join(path, key)} is required` });
      }
      for (const [key, child] of Object.entries(value)) {
        const childRule = rule.keys[key];
        if (childRule === undefined) {
          const suggestion = didYouMean(key, Object.keys(rule.keys));
          problems.push({
            path: join(path, key),
            message: `${join(path, key)} is not a known key${suggestion ? ` (did you mean "${join(path, suggestion)}"?)` : ''}; known keys${path ? ` of ${path}` : ''}: ${Object.keys(rule.keys).join(', ')}`,
          });
        } else if (child !== undefined) {
          checkValue(child, childRule, join(path, key), problems);
        }
      }
      break;
    }
    case 'record': {
      if (!isPlainObject(value)) {
        fail('an object');
        break;
      }
      for (const [key, child] of Object.entries(value)) {
        if (rule.keyPattern && !rule.keyPattern.test(key)) {
          problems.push({ path: join(path, key), message: `${path} key "${key}" must be ${rule.keyDescription ?? `like ${rule.keyPattern}`}` });
        } else {
          checkValue(child, rule.value, join(path, key), problems);
        }
      }
      break;
    }
    case 'string':
      if (typeof value !== 'string' || (rule.nonEmpty && value.trim() === '')) fail(rule.nonEmpty ? 'a non-empty string' : 'a string');
      break;
    case 'enum':
      if (typeof value !== 'string' || !rule.values.includes(value)) {
        const suggestion = typeof value === 'string' ? didYouMean(value, rule.values) : undefined;
        fail(`one of ${rule.values.map((v) => `"${v}"`).join(', ')}`, suggestion);
      }
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || (rule.max !== undefined && value > rule.max)) {
        const name = rule.min === 1 ? 'a positive integer' : rule.min === 0 ? 'a non-negative integer' : `an integer ≥ ${rule.min}`;
        fail(rule.max === undefined ? name : `an integer from ${rule.min} to ${rule.max}`);
      }
      break;
    case 'number': {
      const low = typeof value === 'number' && (rule.exclusiveMin ? value <= rule.min : value < rule.min);
      if (typeof value !== 'number' || !Number.isFinite(value) || low || (rule.max !== undefined && value > rule.max)) {
        if (rule.max !== undefined) fail(`a number from ${rule.min} to ${rule.max}`);
        else fail(rule.min === Number.NEGATIVE_INFINITY ? 'a finite number' : `a number ${rule.exclusiveMin ? '>' : '≥'} ${rule.min}`);
      }
      break;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail('true or false');
      break;
    case 'size':
      if (!isSize(value)) fail('a size such as "8GiB", "512MiB", "80GB" or a number of MiB');
      break;
    case 'array':
      if (!Array.isArray(value)) fail('an array');
      else value.forEach((item, index) => checkValue(item, rule.item, `${path}[${index}]`, problems));
      break;
    case 'function':
      if (typeof value !== 'function') fail('a function');
      break;
    case 'any':
      break;
  }
  return problems;
}

function isSize(value: unknown): boolean {
  try {
    parseSizeBytes(value as string | number);
    return true;
  } catch {
    return false;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** How a bad value is shown in a message: strings quoted, objects as JSON, cut short. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === undefined || typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'function') return 'a function';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

/** The closest candidate within an edit distance that still looks like a typo, if any. */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const lower = input.toLowerCase();
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = candidate.toLowerCase() === lower ? 0 : editDistance(lower, candidate.toLowerCase());
    if (distance <= Math.max(1, Math.floor(candidate.length / 3)) && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Options passed in code: every problem in one MACVM_BAD_ARGUMENT, each naming its key,
 * e.g. `withMacVM("checkout") options: memroy is not a known key (did you mean "memory"?)`.
 */
export function assertOptions(value: unknown, rule: Rule, label: string): void {
  const problems = checkValue(value ?? {}, rule, '');
  if (problems.length === 0) return;
  throw new MacvmError('MACVM_BAD_ARGUMENT', `${label}: ${problems.map((p) => p.message).join('; ')}.`, {
    hint: 'Fix the option named above; the README lists every option with its type and unit.',
    details: { problems },
  });
}
