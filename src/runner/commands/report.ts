import { spawn } from 'node:child_process';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateReport } from '../../report/generate.js';
import { reportLocations } from '../report-locations.js';
import type { Command } from './command.js';
import { parseCommandArgs } from './args.js';

export const reportCommand: Command = {
  path: ['report'],
  summary: 'Make reports/index.html and reports/junit.xml from the last run',
  help: `Usage: macvm report [--reports-dir <dir>] [--open]

Reads <dir>/results.json and <dir>/bench/{latest.json,history.jsonl} (the history where
macvm.config.ts's bench.history puts it) and writes
<dir>/index.html (one file, works offline from file://) and <dir>/junit.xml (for CI).
\`macvm test\` does this by itself at the end of a run; use this verb after copying a
reports folder, or after \`macvm bench\`.

Options:
  --reports-dir <dir>   where the results are (default: $MACVM_REPORTS_DIR, else the
                        config's reports.dir, else ./reports)
  --open                open index.html in the default browser afterwards

Example:
  macvm report --open`,
  async run({ argv, stdout, stderr }) {
    const { values } = parseCommandArgs('report', argv, { 'reports-dir': { type: 'string' }, open: { type: 'boolean' } }, false);
    const { reportsDir, benchHistory } = await reportLocations(values['reports-dir']);
    const { html, junit } = await generateReport({ reportsDir, benchHistory });
    stdout.write(`${display(html)}\n${display(junit)}\n`);
    if (values.open) {
      const opened = await openInBrowser(html);
      if (!opened) stderr.write(`macvm report: could not start a browser; open ${pathToFileURL(html).href} yourself.\n`);
    }
    return 0;
  },
};

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
}

/** Hands the file to the desktop's opener; resolves false when there is none (headless CI). */
function openInBrowser(file: string): Promise<boolean> {
  const url = pathToFileURL(file).href;
  const [command, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  return new Promise((done) => {
    const child = spawn(command, args, { detached: true, stdio: 'ignore' });
    child.once('error', () => done(false));
    child.once('spawn', () => {
      child.unref();
      done(true);
    });
  });
}
