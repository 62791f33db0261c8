import { MacvmError } from '../errors.js';
import { COMMANDS, type CommandEntry } from './commands/index.js';

/** Parses the verb path, dispatches, and turns errors into short messages and exit codes. */
export async function main(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; stdin?: NodeJS.ReadableStream } = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  if (argv[0] === 'help' && argv.length > 1) return main([...argv.slice(1), '--help'], io);
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout.write(usage());
    return argv.length === 0 ? 1 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    const { createRequire } = await import('node:module');
    io.stdout.write(`${(createRequire(import.meta.url)('../../package.json') as { version: string }).version}\n`);
    return 0;
  }
  // Everything after `--` belongs to a guest command (`vm exec <id> -- ls --help`), not to macvm.
  const own = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  const asksHelp = own.includes('--help') || own.includes('-h');
  const entry = findCommand(argv);
  if (!entry) {
    const group = COMMANDS.filter((c) => c.path[0] === argv[0]);
    if (group.length > 0) {
      const choices = group.map((c) => c.path.slice(1).join(' ')).join(', ');
      if (asksHelp) {
        io.stdout.write(usage(group));
        return 0;
      }
      const unknown = argv[1] === undefined || argv[1].startsWith('-') ? '' : `unknown command "${argv[0]} ${argv[1]}"; `;
      io.stderr.write(`macvm ${argv[0]}: ${unknown}choose one of: ${choices}\n`);
      io.stdout.write(usage(group));
    } else {
      io.stderr.write(argv[0]!.startsWith('-') ? `macvm: unknown option "${argv[0]}"; a command comes first.\n` : `macvm: unknown command "${argv[0]}".\n`);
      io.stdout.write(usage());
    }
    return 2;
  }
  const command = await entry.load();
  const rest = argv.slice(entry.path.length);
  if (asksHelp && command.path[0] !== 'test') {
    io.stdout.write(`${command.help.trimEnd()}\n`);
    return 0;
  }
  try {
    return await command.run({ argv: rest, stdout: io.stdout, stderr: io.stderr, stdin: io.stdin });
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
    // Messages that name their verb ("macvm report: …") need no second "macvm:".
    return `${error.message.startsWith('macvm ') ? '' : 'macvm: '}${error.message}\n  [${error.code}]\n`;
  }
  // Not one of macvm's own failures: the message, and the stack only when asked for (a bug report).
  if (error instanceof Error) {
    const detail = process.env.MACVM_DEBUG ? (error.stack ?? error.message) : error.message;
    return `macvm: ${detail}\n${process.env.MACVM_DEBUG ? '' : '  (not an error macvm expected: MACVM_DEBUG=1 shows where it came from, for a bug report)\n'}`;
  }
  return `macvm: ${String(error)}\n`;
}

function usage(entries: CommandEntry[] = COMMANDS): string {
  const width = Math.max(...entries.map((c) => c.path.join(' ').length));
  const lines = entries.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
  return `Usage: macvm <command> [options]   (macvm <command> --help for details)\n\n${lines.join('\n')}\n`;
}
