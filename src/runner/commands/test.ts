import type { Command } from './command.js';

export const testCommand: Command = {
  path: ['test'],
  summary: 'Run specs with vitest and the macvm preset',
  help: `Usage: macvm test [vitest options] [file filters]

Runs the specs once with vitest 4 and the macvm preset: a runner session with a reaper
(VMs never outlive the run, even after SIGKILL), host-wide VM slots, progress lines,
and reports/ (results.json, index.html, junit.xml) at the end.

Every vitest flag works: -t <pattern>, -u (update snapshots), --reporter, --retry,
file filters, watch; an option vitest does not know is refused (exit 2), as vitest
refuses it. Unlike vitest 4's, -u, --silent and --changed do not take a file filter
after them for their value: \`macvm test -u specs/cart.spec.ts\` updates that file's
snapshots only.
Settings come from macvm.config.ts (see the README).

Examples:
  macvm test specs
  macvm test specs/checkout.spec.ts -t "renders the cart"
  MACVM_PROVIDER=qemu macvm test -u`,
  async run({ argv, stdout }) {
    if (argv.includes('--help') || argv.includes('-h')) {
      stdout.write(`${testCommand.help}\n`);
      return 0;
    }
    const { runTests } = await import('../run-tests.js');
    return runTests(argv);
  },
};
