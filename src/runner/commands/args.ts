import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MacvmError } from '../../errors.js';
import { didYouMean } from '../../util/validate.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type ParsedArgs<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>>;

/** node:util parseArgs, with bad flags turned into a coded error that points at --help. */
export function parseCommandArgs<T extends Options>(verb: string, argv: string[], options: T, allowPositionals = true): ParsedArgs<T> {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    // node's parseArgs explains itself at length (how to pass a positional that starts with '-'):
    // its first sentence is the news.
    const message = (error as Error).message.split(/(?<=\.) /)[0]!;
    // "Unknown option '--dryrun'" → did you mean --dry-run?
    const unknown = /Unknown option '(--?[^']+)'/.exec(message)?.[1];
    const suggestion = unknown?.startsWith('--') ? didYouMean(unknown.slice(2), Object.keys(options)) : undefined;
    // "Option '--fail-on-regression <value>' argument is ambiguous" is a value that starts with '-'.
    const ambiguous = /Option '(--[\w-]+)[^']*' argument is ambiguous/.exec(message)?.[1];
    const hint = ambiguous
      ? `A value that starts with "-" goes after "=": ${ambiguous}=<value>. See \`macvm ${verb} --help\`.`
      : suggestion
        ? `Did you mean --${suggestion}? See \`macvm ${verb} --help\`.`
        : `See \`macvm ${verb} --help\`.`;
    throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm ${verb}: ${message}`, { hint });
  }
}

export function positiveInt(verb: string, name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm ${verb}: --${name} must be a positive integer, got "${value}".`);
  return n;
}

export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Left-aligned columns, for the human form of `ls` verbs. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
