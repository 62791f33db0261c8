/**
 * Runs the real `macvm` CLI (bin/macvm.js, i.e. the built dist/) as a child process, the
 * way a user does, with a private MACVM_HOME and reports dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MACVM_BIN = join(REPO_ROOT, 'bin', 'macvm.js');

export interface CliRun {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export function runMacvm(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliRun {
  const child = spawn(process.execPath, [MACVM_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, CI: 'true', NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a test can SIGKILL the runner and all its workers at once.
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}
