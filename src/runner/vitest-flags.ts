import { parseCLI } from 'vitest/node';

/**
 * Which options vitest's own CLI accepts, so `macvm test --frobnicate specs` fails the way
 * `vitest run --frobnicate specs` does instead of running every spec (the option silently
 * took `specs` as its value). vitest/node exports parseCLI, which parses but never runs the
 * command, and the unknown-option check of its argument parser (cac) runs only with the
 * command. The names come from vitest's own help text, the one public listing of them: every
 * option vitest registers has a description, and only those are registered.
 */

let known: Set<string> | null | undefined;

/** The option names vitest accepts (camelCase, as parseCLI keys them), or null if its help could not be read. */
export function vitestOptionNames(): Set<string> | null {
  if (known === undefined) known = readNames(captureHelp()) ?? null;
  return known;
}

/** The options in `options` (parseCLI's result) vitest does not know, as the user typed them in `argv`. */
export function unknownVitestOptions(options: object, argv: string[], names: Set<string> | null = vitestOptionNames()): string[] {
  // Help text we cannot read (a vitest that formats it otherwise) must never block a run.
  if (!names) return [];
  return Object.keys(options)
    .filter((key) => key !== '--' && !names.has(key))
    .map((key) => argv.find((arg) => optionKey(arg) === key) ?? `--${key}`);
}

/** `--no-foo-bar=1` → `fooBar`; `-x` → `x`; anything else (a value, a filter) → undefined. */
function optionKey(arg: string): string | undefined {
  const match = /^--?([^=]+)/.exec(arg);
  if (!match || arg === '--') return undefined;
  return camel(match[1]!.replace(/^no-/, '')).split('.')[0];
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function readNames(help: string): Set<string> | undefined {
  const names = new Set<string>();
  for (const match of help.matchAll(/(?:^|[\s,])--?([a-zA-Z][\w.-]*)/g)) {
    const name = camel(match[1]!.replace(/^no-/, ''));
    names.add(name);
    names.add(name.split('.')[0]!);
  }
  // Far fewer than vitest's ~80 options means the text was not its help.
  return names.size >= 20 && names.has('testNamePattern') ? names : undefined;
}

/**
 * vitest prints its help with console.log and trims the option list by what follows `--help`
 * in process.argv, so both are swapped for the call.
 */
function captureHelp(): string {
  const { log } = console;
  const argv = process.argv;
  let text = '';
  console.log = (...parts: unknown[]) => {
    text += `${parts.join(' ')}\n`;
  };
  process.argv = [argv[0]!, 'vitest', '--help', '--expand-help'];
  try {
    parseCLI(['vitest', '--help', '--expand-help']);
  } catch {
    return '';
  } finally {
    console.log = log;
    process.argv = argv;
  }
  return text;
}

/** The values vitest 4's `-u, --update [type]` means as a type. */
const UPDATE_TYPES = new Set(['true', 'false', 'new', 'all', 'none']);

/**
 * vitest 4's `-u` takes an optional type and so swallows the next word: `macvm test -u
 * specs/cart.spec.ts` parsed as update = "specs/cart.spec.ts" with no filter, which ran every
 * spec and rewrote whatever baselines differed in all of them. A word that is no update type is
 * given back as the first file filter, and `-u` means what it means alone.
 */
export function returnFilterTakenByUpdate<T extends { update?: unknown; u?: unknown }>(parsed: { filter: string[]; options: T }): { filter: string[]; options: T } {
  const { update } = parsed.options;
  if (typeof update !== 'string' || UPDATE_TYPES.has(update)) return parsed;
  return { filter: [update, ...parsed.filter], options: { ...parsed.options, update: true, u: true } };
}
