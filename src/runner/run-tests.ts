/// <reference types="vitest/config" />
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import { parseCLI, startVitest } from 'vitest/node';
import { loadConfig } from './config.js';
import { MacvmReporter } from './reporter.js';
import { siblingEntry } from '../util/sibling-entry.js';
import { MacvmError } from '../errors.js';
import { ensurePrivateHome } from '../vm/home.js';
import { giveBackFilters, unknownVitestOptions } from './vitest-flags.js';

/**
 * `macvm test`: vitest's own CLI parsing, so its flags keep working, plus the macvm
 * preset: the global setup (session, reaper, sweep, progress display) and our reporter
 * next to whatever reporters the user chose. Returns the exit code.
 */
export async function runTests(argv: string[]): Promise<number> {
  const watch = argv[0] === 'watch' || argv[0] === 'dev';
  const typed = argv[0] === 'run' || watch ? argv.slice(1) : argv;
  const rest = giveBackFilters(typed, (word) => existsSync(word));
  const { filter, options } = parseVitestArgs(['vitest', watch ? 'watch' : 'run', ...rest]);
  const unknown = unknownVitestOptions(options, rest);
  if (unknown.length > 0) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm test: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}.`, {
      hint: 'macvm test takes vitest\'s options (npx vitest --help lists them) and file filters; macvm\'s own settings go in macvm.config.ts.',
    });
  }
  // A bad macvm.config.ts fails here, before vitest starts, with every problem named.
  const config = await loadConfig({ cwd: options.root ?? process.cwd() });
  // So does a MACVM_HOME it cannot use: said once here, not as an error inside vitest's global setup.
  await ensurePrivateHome(config.home);
  // vitest's CLI names them `reporter`; passed on as such they would replace macvm's own.
  const { reporter: cliReporters, ...vitestOptions } = options as typeof options & { reporter?: unknown };
  const chosen = cliReporters ?? options.reporters;
  const userReporters = chosen === undefined ? ['default'] : [chosen].flat();
  const root = options.root ?? process.cwd();
  const { folders, filters } = await splitFolders(filter, root);
  const vitest = await startVitest(
    'test',
    filters,
    {
      ...vitestOptions,
      // macvm.config.ts holds macvm's settings; a vitest config is used only when named.
      config: options.config ?? false,
      reporters: [...(userReporters as never[]), new MacvmReporter({
          reportsDir: config.reports.dir,
          benchHistory: config.bench.history,
          provider: config.provider,
          html: config.reports.html,
          junit: config.reports.junit,
          log: (line) => process.stderr.write(`${line}\n`),
        }) as never],
    },
    {
      test: {
        globalSetup: [siblingPath('global-setup')],
        setupFiles: [siblingPath('worker-setup')],
        // Booting a VM happens in beforeAll; the ready deadline and slot waits bound it,
        // not vitest's default 10 s hook timeout.
        hookTimeout: 40 * 60_000,
        testTimeout: 5 * 60_000,
        pool: 'forks',
        // A folder argument means that folder, not every path containing its name.
        ...(folders.length > 0 ? { include: folders.map((folder) => `${folder}/${SPEC_PATTERN}`) } : {}),
      },
    },
  );
  if (vitest.shouldKeepServer()) return new Promise<number>(() => {});
  await vitest.close();
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

/** vitest's parser throws plain TypeErrors for a value it refuses (`--silent=maybe`): a bad argument. */
function parseVitestArgs(argv: string[]): ReturnType<typeof parseCLI> {
  try {
    return parseCLI(argv);
  } catch (error) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm test: ${(error as Error).message}`, {
      hint: 'npx vitest --help lists the values each option takes.',
      cause: error,
    });
  }
}

/** vitest's default test-file pattern, applied inside each folder named on the command line. */
const SPEC_PATTERN = '**/*.{test,spec}.?(c|m)[jt]s?(x)';

/**
 * vitest treats every positional argument as a substring of a file path, so `specs` also ran
 * `cases/x/specs/y.spec.ts`. Arguments naming an existing directory become include globs
 * rooted there; the rest stay vitest filters.
 */
async function splitFolders(args: string[], root: string): Promise<{ folders: string[]; filters: string[] }> {
  const folders: string[] = [];
  const filters: string[] = [];
  for (const arg of args) {
    const isFolder = await stat(resolve(root, arg)).then((s) => s.isDirectory(), () => false);
    if (isFolder) folders.push(relative(root, resolve(root, arg)).split(sep).join('/') || '.');
    else filters.push(arg);
  }
  return { folders, filters };
}

/** A module next to this one, in whichever form (src .ts or dist .js) is running. */
function siblingPath(name: string): string {
  return siblingEntry(import.meta.url, name).file;
}
