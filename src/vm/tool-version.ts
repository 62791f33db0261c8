import { execa } from 'execa';

/** The first line a tool prints for `--version` (or `args`), or undefined when it is not there or fails. */
export async function toolVersion(bin: string, args: string[] = ['--version']): Promise<string | undefined> {
  const result = await execa(bin, args, { reject: false, timeout: 10_000 });
  return result.exitCode === 0 ? result.stdout.split('\n')[0]?.trim() : undefined;
}
