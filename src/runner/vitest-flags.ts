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

/**
 * vitest options whose value is optional, and which words each takes as its value. Such an
 * option swallows the next word: vitest 4 reads `-u specs/cart.spec.ts` as update type
 * "specs/cart.spec.ts" with no filter (every spec ran and every differing baseline was
 * rewritten), `--changed specs/cart.spec.ts` as "changed since the git ref specs/cart.spec.ts",
 * and refuses `--silent specs/cart.spec.ts` with a TypeError.
 */
const OPTIONAL_VALUES: { flags: string[]; isValue: (word: string, isPath: (word: string) => boolean) => boolean }[] = [
  { flags: ['-u', '--update'], isValue: (word) => ['true', 'false', 'new', 'all', 'none'].includes(word) },
  { flags: ['--silent'], isValue: (word) => ['true', 'false', 'passed-only'].includes(word) },
  // Any word can be a git ref; one that names a file or folder here is taken as a filter.
  { flags: ['--changed'], isValue: (word, isPath) => !isPath(word) },
];

/**
 * The argument list with each optional-value option that would swallow a file filter moved to
 * the end, where it means what it means alone: `-u specs/cart.spec.ts` becomes
 * `specs/cart.spec.ts -u`. Words after `--` are left alone.
 */
export function giveBackFilters(argv: string[], isPath: (word: string) => boolean): string[] {
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  const kept: string[] = [];
  const moved: string[] = [];
  for (let i = 0; i < end; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const option = OPTIONAL_VALUES.find(({ flags }) => flags.includes(arg));
    const swallows = option && i + 1 < end && next !== undefined && !next.startsWith('-') && !option.isValue(next, isPath);
    (swallows ? moved : kept).push(arg);
  }
  return [...kept, ...moved, ...argv.slice(end)];
}
