import { MacvmError } from '../../errors.js';
import { INIT_SCRIPT, initProject } from '../init-project.js';
import { parseCommandArgs, writeJson } from './args.js';
import type { Command } from './command.js';

export const initCommand: Command = {
  path: ['init'],
  summary: 'Start a project: macvm.config.ts, an example spec and an npm script',
  help: `Usage: macvm init [dir] [--json]

Writes what a project needs for its first spec, in dir (default: here; created when missing):
  macvm.config.ts         provider qemu, default image linux-test
  specs/example.spec.ts   one suite, one test: a command in a fresh VM
  package.json            gains "${INIT_SCRIPT.name}": "${INIT_SCRIPT.command}" (created when missing)
A file that exists is never overwritten, and a script of that name is kept as it is.

Options:
  --json   Print the steps as JSON: [{ path, action: written|kept|updated, note? }].

Examples:
  npm install --save-dev macvm && npx macvm init && npx macvm doctor --fix && npx macvm test`,
  async run({ argv, stdout }) {
    const { values, positionals } = parseCommandArgs('init', argv, { json: { type: 'boolean' } });
    if (positionals.length > 1) throw new MacvmError('MACVM_BAD_ARGUMENT', `macvm init: one project dir at most, got ${positionals.length}: ${positionals.join(' ')}.`, { hint: 'See `macvm init --help`.' });
    const steps = await initProject(positionals[0] ?? '.');
    if (values.json) {
      writeJson(stdout, steps);
      return 0;
    }
    for (const step of steps) stdout.write(`  ${step.action.padEnd(8)} ${step.path}${step.note ? `  (${step.note})` : ''}\n`);
    stdout.write(`Next:\n  npx macvm doctor --fix   # installs what qemu and the image build need (apt)\n  npx macvm test           # or: npm run ${INIT_SCRIPT.name}\n`);
    return 0;
  },
};
