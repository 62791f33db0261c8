import { MacvmError } from '../errors.js';
import { COMMANDS, type CommandEntry } from './commands/index.js';

/** Parses the verb path, dispatches, and turns errors into short messages and exit codes. */
export async function main(argv: string[], io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout.write(usage());
    return argv.length === 0 ? 1 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    const { createRequire } = await import('node:module');
    io.stdout.write(`${(createRequire(import.meta.url)('../../package.json') as { version: string }).version}\n`);
    return 0;
  }
  const entry = findCommand(argv);
  if (!entry) {
    const group = COMMANDS.filter((c) => c.path[0] === argv[0]);
    if (group.length > 0) {
      io.stderr.write(`macvm ${argv[0]}: choose one of: ${group.map((c) => c.path.slice(1).join(' ')).join(', ')}\n`);
      io.stdout.write(usage(group));
    } else {
      io.stderr.write(`macvm: unknown command "${argv[0]}".\n`);
      io.stdout.write(usage());
    }
    return 2;
  }
  const command = await entry.load();
  const rest = argv.slice(entry.path.length);
  if ((rest.includes('--help') || rest.includes('-h')) && command.path[0] !== 'test') {
    io.stdout.write(`${command.help.trimEnd()}\n`);
    return 0;
  }
  try {
    return await command.run({ argv: rest, stdout: io.stdout, stderr: io.stderr });
  } catch (error) {
    io.stderr.write(formatError(error));
    return error instanceof MacvmError && error.code === 'MACVM_BAD_ARGUMENT' ? 2 : 1;
  }
}

function findCommand(argv: string[]): CommandEntry | undefined {
  const matches = COMMANDS.filter((c) => c.path.every((part, i) => argv[i] === part));
  return matches.sort((a, b) => b.path.length - a.path.length)[0];
}

export function formatError(error: unknown): string {
  if (error instanceof MacvmError) {
    return `macvm: ${error.message}\n  [${error.code}]\n`;
  }
  if (error instanceof Error) return `macvm: ${error.stack ?? error.message}\n`;
  return `macvm: ${String(error)}\n`;
}

function usage(entries: CommandEntry[] = COMMANDS): string {
  const width = Math.max(...entries.map((c) => c.path.join(' ').length));
  const lines = entries.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
  return `Usage: macvm <command> [options]   (macvm <command> --help for details)\n\n${lines.join('\n')}\n`;
}
