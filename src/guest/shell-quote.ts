import { MacvmError } from '../errors.js';
import type { ExecResult, ShellTemplate } from './types.js';

/**
 * Quoting for POSIX sh, used by the `sh` tagged template and by exec's env/cwd
 * wrapper. Every value becomes single-quoted text, where nothing is special except
 * the single quote itself, which is written as '\'' (close, escaped quote, reopen).
 * That works the same in sh, dash, busybox ash, bash and zsh, i.e. whatever login
 * shell the guest's sshd hands the command to.
 */

/**
 * Words made only of these characters mean the same quoted or not in every shell
 * above, so they are left bare for readable commands and error messages. (`=` and
 * `%` are not here: a leading `=` expands to a command path in zsh, macOS's shell.)
 */
const SAFE_WORD = /^[A-Za-z0-9_@+:,./-]+$/;

/** One shell word that the shell turns back into exactly `text`. */
export function quoteShellWord(text: string): string {
  if (SAFE_WORD.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * One interpolated value: strings are one quoted word, numbers and bigints are
 * written as they print, arrays become several quoted words. Anything else
 * (undefined, null, objects, booleans) is almost always a bug in the caller, so it
 * is refused rather than turned into "undefined" or "[object Object]".
 */
export function quoteShellValue(value: unknown, position = 0): string {
  if (typeof value === 'string') return quoteShellWord(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw badValue(String(value), position);
    return String(value);
  }
  if (typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) {
    return value
      .map((item) => {
        if (Array.isArray(item)) throw badValue('a nested array', position);
        return quoteShellValue(item, position);
      })
      .join(' ');
  }
  throw badValue(value === null ? 'null' : typeof value === 'object' ? 'an object' : String(value), position);
}

/**
 * The `sh` tagged template over a command runner: the literal parts are shell source, so they are
 * taken raw (sh`printf 'a\n'` hands printf a backslash-n, exactly as typed in a terminal); the
 * values are quoted. A bad value rejects the promise rather than throwing.
 */
export function shellTemplate(run: (command: string) => Promise<ExecResult>): ShellTemplate {
  return (strings, ...values) => {
    try {
      return run(buildShellCommand(strings.raw, values));
    } catch (error) {
      return Promise.reject(error);
    }
  };
}

/** Joins a tagged template's literal parts with quoted interpolations. */
export function buildShellCommand(strings: readonly string[], values: readonly unknown[]): string {
  let command = strings[0] ?? '';
  values.forEach((value, index) => {
    command += quoteShellValue(value, index + 1) + (strings[index + 1] ?? '');
  });
  return command;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The command line sent to the server for exec with env and/or cwd. SSH servers
 * refuse `env` channel requests unless configured (OpenSSH AcceptEnv; dropbear never
 * honours most), so the variables are exported by the remote shell instead, and the
 * user's command runs as its own `sh -c` so that its `;`, `&&` and `exit` can never
 * escape the `cd`'s guard.
 */
export function wrapCommand(command: string, options: { env?: Record<string, string>; cwd?: string } = {}): string {
  const parts: string[] = [];
  // A leading "-" would make cd read the directory as an option.
  if (options.cwd !== undefined) parts.push(`cd ${quoteShellWord(options.cwd.startsWith('-') ? `./${options.cwd}` : options.cwd)}`);
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!ENV_NAME.test(name)) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `"${name}" is not a valid environment variable name for a POSIX shell.`, {
        hint: 'Use letters, digits and underscores, not starting with a digit.',
      });
    }
    if (typeof value !== 'string') {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `Environment variable ${name} must be a string, got ${value === null ? 'null' : typeof value}.`);
    }
    parts.push(`export ${name}=${quoteShellWord(value)}`);
  }
  if (parts.length === 0) return command;
  return `${parts.join(' && ')} && exec sh -c ${quoteShellWord(command)}`;
}

function badValue(what: string, position: number): MacvmError {
  return new MacvmError('MACVM_BAD_ARGUMENT', `Interpolation #${position} in a sh\`...\` command is ${what}, which has no safe meaning in a shell command.`, {
    hint: 'Interpolate strings, numbers or arrays of them; convert anything else explicitly (String(x), JSON.stringify(x)).',
  });
}
