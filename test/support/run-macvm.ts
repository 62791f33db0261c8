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

/**
 * `input`: written to the CLI's stdin, which then closes (without it, stdin is /dev/null).
 * `bin`: another bin/macvm.js (an installed package's) than this repo's. An env value of
 * undefined removes that variable.
 */
export function runMacvm(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; bin?: string } = {}): CliRun {
  const child = spawn(process.execPath, [options.bin ?? MACVM_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, CI: 'true', NO_COLOR: '1', ...options.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    // Its own process group, so a test can SIGKILL the runner and all its workers at once.
    detached: true,
  });
  if (options.input !== undefined) {
    // A CLI that exits before reading all of it (as a shell pipeline's reader may) is no test error.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input);
  }
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** The CLI from the TypeScript sources (test/fixtures/orchard/macvm-from-sources.ts): no build in dist/ needed. */
export const MACVM_FROM_SOURCES = join(REPO_ROOT, 'test', 'fixtures', 'orchard', 'macvm-from-sources.ts');

/**
 * `macvm <args>` from the sources in a process of its own, in `cwd`, as a user's later command
 * is: it must exit by itself within `timeoutMs` (a handle left open — a port-forward listener,
 * a socket — shows up as a hang, and fails).
 */
export async function macvmFromSources(args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const timeoutMs = options.timeoutMs ?? 45_000;
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), MACVM_FROM_SOURCES, ...args], {
    cwd: options.cwd,
    env: { ...process.env, CI: 'true', NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', (exit) => resolve(exit)));
  clearTimeout(timer);
  if (hung) throw new Error(`macvm ${args.join(' ')} did not exit within ${timeoutMs / 1000} s (a handle left open?)\nstdout: ${stdout}\nstderr: ${stderr}`);
  return { code, stdout, stderr };
}
