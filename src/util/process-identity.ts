import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

/**
 * A PID alone is not an identity: PIDs are reused. A process is identified by its PID
 * plus its start time as the OS reports it, so the reaper and `macvm gc` never signal
 * an unrelated process that inherited a dead VM's PID.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return fields[19]; // field 22 overall: starttime in clock ticks since boot
    } catch {
      return undefined;
    }
  }
  const result = await execa('ps', ['-o', 'lstart=', '-p', String(pid)], { reject: false });
  const started = result.stdout.trim();
  return result.exitCode === 0 && started ? started : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` is alive and is still the process that had `startTime`. */
export async function isSameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!isAlive(pid)) return false;
  if (startTime === undefined) return true;
  return (await processStartTime(pid)) === startTime;
}
