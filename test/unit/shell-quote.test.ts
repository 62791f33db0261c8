import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { buildShellCommand, quoteShellValue, quoteShellWord, wrapCommand } from '../../src/guest/shell-quote.js';

/** What a real POSIX shell makes of a command line: its arguments, one per NUL. */
function argvOf(commandLine: string, shell = 'sh'): string[] {
  const out = execFileSync(shell, ['-c', `printf '%s\\0' ${commandLine}`]);
  return out.toString('utf8').split('\0').slice(0, -1);
}

const NASTY = [
  "it's",
  'a "double" quote',
  '$(touch /tmp/macvm-pwned) `id` ${HOME}',
  'two  spaces\tand a tab',
  'line one\nline two\n',
  '*.txt ? [a-z] ~ ~root',
  '; rm -rf / && echo | cat > x < y',
  "''''",
  '\\ back\\slashes\\',
  '-n',
  '=cmd',
  'héllo wörld ✓',
  '',
  '!event !! history',
];

describe('quoteShellWord', () => {
  test.each(NASTY.map((text) => [JSON.stringify(text), text]))('%s survives sh and bash unchanged', (_, text) => {
    const quoted = quoteShellWord(text);
    expect(argvOf(quoted)).toEqual([text]);
    expect(argvOf(quoted, 'bash')).toEqual([text]);
  });

  test('plain words stay readable; everything else is single-quoted', () => {
    expect(quoteShellWord('/usr/bin/uname')).toBe('/usr/bin/uname');
    expect(quoteShellWord('a b')).toBe("'a b'");
    expect(quoteShellWord("it's")).toBe("'it'\\''s'");
    expect(quoteShellWord('')).toBe("''");
    expect(quoteShellWord('=x')).toBe("'=x'");
  });
});

describe('quoteShellValue', () => {
  test('numbers and bigints are written as they print', () => {
    expect(quoteShellValue(42)).toBe('42');
    expect(quoteShellValue(-1.5)).toBe('-1.5');
    expect(quoteShellValue(12345678901234567890n)).toBe('12345678901234567890');
  });

  test('an array becomes several words, each quoted', () => {
    expect(argvOf(quoteShellValue(['a b', "c'd", 3, '']))).toEqual(['a b', "c'd", '3', '']);
  });

  test.each([
    ['undefined', undefined],
    ['null', null],
    ['an object', { a: 1 }],
    ['a boolean', true],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a nested array', [['x']]],
    ['an array holding undefined', ['x', undefined]],
  ])('%s is refused with MACVM_BAD_ARGUMENT', (_, value) => {
    let caught: unknown;
    try {
      quoteShellValue(value, 2);
    } catch (error) {
      caught = error;
    }
    expect(isMacvmError(caught, 'MACVM_BAD_ARGUMENT')).toBe(true);
    expect((caught as Error).message).toContain('#2');
  });
});

describe('buildShellCommand', () => {
  test('joins literal parts with quoted interpolations', () => {
    const tag = (strings: TemplateStringsArray, ...values: unknown[]) => buildShellCommand(strings.raw, values);
    const file = 'my file; $(id)';
    const command = tag`ls -l ${file} ${['x y', 2]}`;
    expect(command).toBe("ls -l 'my file; $(id)' 'x y' 2");
    expect(argvOf(command.slice('ls -l '.length))).toEqual(['my file; $(id)', 'x y', '2']);
  });
});

describe('wrapCommand', () => {
  test('without env or cwd the command is sent as it is', () => {
    expect(wrapCommand('echo hi')).toBe('echo hi');
    expect(wrapCommand('echo hi', { env: {} })).toBe('echo hi');
  });

  test('cwd and env reach the command, and its own ; cannot escape the cd guard', () => {
    const wrapped = wrapCommand('pwd; printf "%s|" "$GREETING" "$EMPTY"', { cwd: '/', env: { GREETING: "it's $(x) ok", EMPTY: '' } });
    expect(execFileSync('sh', ['-c', wrapped]).toString()).toBe("/\nit's $(x) ok||");
    const guarded = wrapCommand('echo ran; echo again', { cwd: '/no/such/dir/macvm' });
    let stdout = '';
    try {
      stdout = execFileSync('sh', ['-c', guarded], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    } catch (error) {
      stdout = String((error as { stdout?: Buffer }).stdout ?? '');
    }
    expect(stdout).toBe('');
  });

  test('a bad variable name is refused', () => {
    expect(() => wrapCommand('true', { env: { 'A-B': 'x' } })).toThrowError(/valid environment variable name/);
  });
});
