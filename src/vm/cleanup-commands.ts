import { execa } from 'execa';
import { messageOf } from '../errors.js';
import type { VmRecord } from './runtime-dir.js';

/**
 * Runs a VM record's cleanup commands in order (e.g. `tart delete <name>`, or deleting an
 * Orchard VM on its controller): what removing the clone means outside its runtime dir.
 * Each runs even if an earlier one failed; returns one line per failure.
 */
export async function runCleanupCommands(record: VmRecord | undefined): Promise<string[]> {
  const errors: string[] = [];
  for (const argv of record?.cleanup ?? []) {
    const [file, ...args] = argv;
    if (!file) continue;
    const result = await execa(file, args, { reject: false, timeout: 30_000, stdin: 'ignore' });
    if (result.failed) errors.push(`${argv.join(' ')}: ${result.exitCode === undefined ? messageOf(result.shortMessage) : `exit ${result.exitCode}`} ${result.stderr.slice(-200)}`.trim());
  }
  return errors;
}
