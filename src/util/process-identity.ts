import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A PID alone is not an identity: PIDs are reused. A process is identified by its PID
 * plus its start time as the OS reports it, so the reaper and `macvm gc` never signal
 * an unrelated process that inherited a dead VM's PID.
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (process.platform === 'linux') return (await linuxProcStat(pid))?.startTime;
  // node's execFile, not execa: this module sits under the lock every pull takes, and loading
  // execa's ~100 modules cost a `macvm image pull` 0.3–0.5 s of start on a loaded host.
  return new Promise((resolve) =>
    execFile('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8' }, (error, stdout) => resolve(error ? undefined : stdout.trim() || undefined)),
  );
}

let ownStartTime: string | undefined | null = null;

/** This process's start time (as processStartTime() reports it), read once, synchronously. */
export function selfStartTime(): string | undefined {
  if (ownStartTime !== null) return ownStartTime;
  try {
    if (process.platform === 'linux') {
      const stat = readFileSync('/proc/self/stat', 'utf8');
      ownStartTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    } else {
      ownStartTime = execFileSync('ps', ['-o', 'lstart=', '-p', String(process.pid)], { encoding: 'utf8' }).trim() || undefined;
    }
  } catch {
    ownStartTime = undefined;
  }
  return ownStartTime;
}

/** State letter and start time from one read of /proc/<pid>/stat. */
async function linuxProcStat(pid: number): Promise<{ state: string; startTime: string | undefined } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 overall (state); fields[19] is field 22 (starttime, clock ticks since boot).
  return { state: fields[0] ?? '', startTime: fields[19] };
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
  if (!isAlive(pid)) return false;
  if (process.platform === 'linux') {
    const stat = await linuxProcStat(pid);
    return stat !== undefined && stat.state !== 'Z' && (startTime === undefined || stat.startTime === startTime);
  }
  return startTime === undefined || (await processStartTime(pid)) === startTime;
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
  const stat = await linuxProcStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}
