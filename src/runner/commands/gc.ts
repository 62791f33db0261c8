import { describeRemovals, sweepDeadSessions } from '../gc.js';
import { parseCommandArgs, writeJson } from './args.js';
import type { Command } from './command.js';

export const gcCommand: Command = {
  path: ['gc'],
  summary: 'Remove VMs, clones and sessions that dead runs left behind',
  help: `Usage: macvm gc [--all] [--dry-run] [--json]

Stops and deletes the VMs of runner sessions whose process is gone (a run that was killed,
or a machine that lost power), removes their session dirs, and frees VM slots whose holder
died. VMs of live runs are never touched. The runner does this by itself at start; this
is the same by hand.

Options:
  --all       Also remove VMs started with \`macvm vm start\` (detached), and leftovers of
              unknown sessions even if their VM process still runs. Live runs are still spared.
  --dry-run   Say what would be removed; remove nothing.
  --json      Print the report as JSON: { dryRun, removed: [{ kind, id, reason, pid? }], kept }.

Examples:
  macvm gc
  macvm gc --dry-run
  macvm gc --all --json`,
  async run({ argv, stdout }) {
    const { values } = parseCommandArgs('gc', argv, { all: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } }, false);
    const json = Boolean(values.json);
    const dryRun = Boolean(values['dry-run']);
    const report = await sweepDeadSessions({ all: Boolean(values.all), dryRun, log: json ? undefined : (line) => stdout.write(`${line}\n`) });
    if (json) {
      writeJson(stdout, report);
      return 0;
    }
    if (report.removed.length === 0) stdout.write('Nothing to remove: no dead sessions left anything behind.\n');
    else stdout.write(`${dryRun ? 'Would remove' : 'Removed'} ${describeRemovals(report.removed)}.\n`);
    const detached = report.kept.filter((k) => k.reason.startsWith('detached'));
    if (detached.length) stdout.write(`Kept ${detached.length} detached VM(s) (${detached.map((k) => k.id).join(', ')}); \`macvm gc --all\` or \`macvm vm rm <id>\` removes them.\n`);
    const failed = report.removed.filter((r) => r.errors?.length);
    for (const removal of failed) stdout.write(`warning: cleanup of ${removal.id} partly failed: ${removal.errors!.join('; ')}\n`);
    return failed.length ? 1 : 0;
  },
};
