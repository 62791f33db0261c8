import { copyFile, cp, writeFile, chmod } from 'node:fs/promises';
import { execa } from 'execa';
import type { VcpuTimes } from '../shared/cpu-clock.js';

/**
 * What the bench runner needs from each side: run a shell command, put files there.
 * A GuestSession (or a MacVM) is one; localShell() is the host's. Keeping the runner on
 * this small shape lets it be tested against the host through a real sshd before any VM
 * exists, and keeps src/bench free of imports from the layers above it.
 */
export interface BenchShell {
  exec(
    command: string,
    options?: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; reject?: boolean },
  ): Promise<{ stdout: string; stderr: string; exitCode: number | null }>;
  upload(localPath: string, remotePath: string): Promise<void>;
  writeFile(remotePath: string, data: string | Buffer, options?: { mode?: number }): Promise<void>;
  /**
   * The VM's vCPU time as the host counts it (src/shared/cpu-clock.ts), where the side is a
   * VM whose threads this host can see (a MacVM on qemu); absent or undefined elsewhere.
   */
  cpuClock?(): Promise<VcpuTimes | undefined>;
}

/** The host as a BenchShell: `sh -c` through execa, files through node:fs. */
export function localShell(): BenchShell {
  return {
    async exec(command, options = {}) {
      const result = await execa('sh', ['-c', command], {
        cwd: options.cwd,
        env: options.env,
        timeout: options.timeoutMs,
        reject: false,
        stdin: 'ignore',
      });
      if (result.timedOut) {
        throw Object.assign(new Error(`timed out after ${options.timeoutMs} ms: ${command}`), { timedOut: true });
      }
      return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? null };
    },
    async upload(localPath, remotePath) {
      await cp(localPath, remotePath, { recursive: true }).catch(async () => copyFile(localPath, remotePath));
    },
    async writeFile(path, data, options = {}) {
      await writeFile(path, data, { mode: options.mode });
      if (options.mode !== undefined) await chmod(path, options.mode);
    },
  };
}

/** One POSIX-shell word meaning exactly `text` (single quotes; ' written as '\''). */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_@+:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
