import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * True when `pid` is running (not a zombie) and is still the process that had `startTime`.
 * A zombie has exited: a VM whose parent died is re-parented, and where nobody reaps it
 * (some container init processes do not) it would otherwise look alive for ever.
 */
export async function isSameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!(await isRunning(pid))) return false;
  if (startTime === undefined) return true;
  return (await processStartTime(pid)) === startTime;
}

/**
 * Resolves once the process that had `startTime` is gone, for VMs this process did not
 * spawn (no child handle to watch). Unref'd polling: watching must not keep node alive.
 */
export async function waitForExit(pid: number, startTime: string | undefined, pollMs = 100): Promise<void> {
  while (await isSameProcess(pid, startTime)) await sleep(pollMs, undefined, { ref: false });
}

/** Alive and not a zombie (see isSameProcess). */
export async function isRunning(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return false;
  if (process.platform !== 'linux') return true;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}
