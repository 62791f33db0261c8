/**
 * `macvm test` passes its arguments to vitest's parseCLI, which does not check option names;
 * vitest-flags.ts checks them against vitest's own help. These run the real vitest.
 */
import { describe, expect, it } from 'vitest';
import { parseCLI } from 'vitest/node';
import { readNames, giveBackFilters, unknownVitestOptions, vitestOptionNames } from '../../src/runner/vitest-flags.js';

function unknownIn(...argv: string[]): string[] {
  const { options } = parseCLI(['vitest', 'run', ...argv]);
  return unknownVitestOptions(options, argv);
}

describe('vitest options macvm test passes on', () => {
  it('reads the names from vitest\'s help, dotted sub-options included', () => {
    const names = vitestOptionNames();
    expect(names).not.toBeNull();
    for (const name of ['testNamePattern', 't', 'update', 'u', 'reporter', 'coverage', 'shard', 'passWithNoTests', 'inspectBrk', 'expandHelp', 'color']) expect(names!.has(name), name).toBe(true);
    expect(names!.has('frobnicate')).toBe(false);
  });

  it('accepts what vitest accepts, in every spelling parseCLI takes', () => {
    expect(unknownIn('-t', 'cart', '-u', '--reporter=dot', '--no-color', '--coverage.enabled', '--shard=1/2', '--bail', '1', 'specs')).toEqual([]);
    expect(unknownIn('--test-name-pattern', 'cart', '--pass-with-no-tests', '--inspect-brk', '--retry=2')).toEqual([]);
  });

  it('names the unknown ones as they were typed', () => {
    expect(unknownIn('--frobnicate', 'specs')).toEqual(['--frobnicate']);
    expect(unknownIn('-x', '--bogus-thing=1', '-u')).toEqual(['-x', '--bogus-thing=1']);
  });

  it('never blocks a run when the help text is not what it expects', () => {
    expect(readNames('Usage: something else\n  --only-one\n')).toBeUndefined();
    const { options } = parseCLI(['vitest', 'run', '--frobnicate']);
    expect(unknownVitestOptions(options, ['--frobnicate'], null)).toEqual([]);
  });
});

describe('an option with an optional value before a file filter', () => {
  const paths = new Set(['specs', 'specs/cart.spec.ts', 'specs/login.spec.ts']);
  const parsed = (...argv: string[]) => parseCLI(['vitest', 'run', ...giveBackFilters(argv, (word) => paths.has(word))]);

  it('gives the filter -u swallowed back, in its place, and updates as -u alone does', () => {
    expect(parsed('-u', 'specs/cart.spec.ts')).toMatchObject({ filter: ['specs/cart.spec.ts'], options: { update: true } });
    expect(parsed('-u', 'specs/cart.spec.ts', 'specs/login.spec.ts', '-t', 'renders')).toMatchObject({
      filter: ['specs/cart.spec.ts', 'specs/login.spec.ts'],
      options: { update: true, testNamePattern: 'renders' },
    });
    expect(parsed('specs/login.spec.ts', '--update', 'specs/cart.spec.ts')).toMatchObject({
      filter: ['specs/login.spec.ts', 'specs/cart.spec.ts'],
      options: { update: true },
    });
  });

  it('leaves vitest\'s update types and a filter after them alone', () => {
    expect(parsed('-u', 'new', 'specs')).toMatchObject({ filter: ['specs'], options: { update: 'new' } });
    expect(parsed('--update', 'all')).toMatchObject({ filter: [], options: { update: 'all' } });
    expect(parsed('specs', '-u')).toMatchObject({ filter: ['specs'], options: { update: true } });
    expect(parsed('specs')).toMatchObject({ filter: ['specs'], options: {} });
    expect(parsed('specs').options).not.toHaveProperty('update');
  });

  it('--silent: a filter instead of vitest\'s TypeError, its own values kept', () => {
    expect(() => parseCLI(['vitest', 'run', '--silent', 'specs'])).toThrow(TypeError);
    expect(parsed('--silent', 'specs')).toMatchObject({ filter: ['specs'], options: { silent: true } });
    expect(parsed('--silent', 'passed-only', 'specs')).toMatchObject({ filter: ['specs'], options: { silent: 'passed-only' } });
  });

  it('--changed: a word that names a file or folder is a filter, any other a git ref', () => {
    expect(parsed('--changed', 'specs/cart.spec.ts')).toMatchObject({ filter: ['specs/cart.spec.ts'], options: { changed: true } });
    expect(parsed('--changed', 'HEAD~1', 'specs')).toMatchObject({ filter: ['specs'], options: { changed: 'HEAD~1' } });
  });

  it('leaves words after -- alone', () => {
    expect(giveBackFilters(['-u', '--', 'specs'], () => true)).toEqual(['-u', '--', 'specs']);
    expect(giveBackFilters(['specs', '-u', '--', 'x'], () => true)).toEqual(['specs', '-u', '--', 'x']);
  });
});
