import { MacvmError } from '../../errors.js';
import { parseSize, parseSizeBytes } from '../../util/size.js';
import { createMacosImage } from '../../vm/vz/image-create.js';
import type { Command } from './command.js';
import { parseCommandArgs, positiveInt, writeJson } from './args.js';
import { progressPrinter } from './progress-printer.js';

export const imageCreateCommand: Command = {
  path: ['image', 'create'],
  summary: 'Create a macOS image from an IPSW (Apple Silicon, vz provider)',
  help: `Usage: macvm image create <name> --ipsw latest|<path> [--disk 80GB] [--cpus N] [--memory 8GiB] [--force] [--json]

Installs macOS into a new Tart-compatible bundle ($MACVM_HOME/images/<name>: config.json,
disk.img, nvram.bin) with Virtualization.framework's installer, showing download and install
progress. --ipsw latest downloads the newest IPSW this Mac supports into $MACVM_HOME/downloads
(resumable: rerun after an interruption). CPUs and memory default to, and never go below,
the IPSW's minimum. The disk is sparse: it takes space only as the guest writes.

After the install, finish Setup Assistant once (create the user, enable Remote Login) and pin
the guest's SSH host key in macvm.config.ts: images: { <name>: { ssh: { user, hostKey } } }.

Examples:
  macvm image create sonoma --ipsw latest
  macvm image create ci-macos --ipsw ~/Downloads/UniversalMac_14.4.1_23E224_Restore.ipsw --disk 120GB --cpus 4 --memory 8GiB`,
  async run({ argv, stdout, stderr }) {
    const { values, positionals } = parseCommandArgs('image create', argv, {
      ipsw: { type: 'string' },
      disk: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    const name = positionals[0];
    if (!name) throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm image create: which name?', { hint: 'See `macvm image create --help`.' });
    if (!values.ipsw) throw new MacvmError('MACVM_BAD_ARGUMENT', 'macvm image create: --ipsw latest|<path> is required.');
    const progress = progressPrinter(stderr, { quiet: values.json });
    const started = Date.now();
    const image = await createMacosImage({
      name,
      ipsw: values.ipsw,
      diskBytes: parseSizeBytes(values.disk ?? '80GB', '--disk'),
      cpus: positiveInt('image create', 'cpus', values.cpus),
      memoryMiB: values.memory === undefined ? undefined : parseSize(values.memory, '--memory'),
      force: values.force,
      onProgress: progress.update,
    });
    progress.done();
    if (values.json) writeJson(stdout, image);
    else stdout.write(`${name}: macOS ${image.osVersion} (${image.buildVersion}) installed in ${((Date.now() - started) / 60_000).toFixed(1)} min → ${image.bundle}\n`);
    return 0;
  },
};
