import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import { FN_RUNNER_SOURCE, parseFnRunnerOutput } from './fn-runner-source.js';
import { guestNode, hostNode, type NodeOnSide } from './node-runtime.js';
import { ratioOfMedians } from './ratio.js';
import type { BenchEnvironment, BenchMethod, BenchRun, WorkloadResult } from '../shared/bench-records.js';
import { localShell, shellWord, type BenchShell } from './shell.js';
import { summarize } from './stats.js';
import { chooseCommandTimer, parseTimerOutput, type CommandTimer } from './timers.js';
import type { CommandWorkload, FunctionWorkload, Workload } from './workloads.js';

export interface RunBenchOptions {
  suite: string;
  workloads: Workload[];
  /** The guest (a GuestSession or MacVM fits). */
  guest: BenchShell;
  /** The host side; localShell() unless a test substitutes another. */
  host?: BenchShell;
  /** Measured rounds per side (default 10). Fewer than 6 cannot give a 95 % median CI. */
  rounds?: number;
  /** Rounds per side run first and discarded (default 1): caches, page cache, JIT, CPU clocks. */
  warmup?: number;
  /** Directory in the guest for per-run temp files (default /tmp). */
  guestDir?: string;
  /** Where this host's node is uploaded when the guest needs it (default $HOME/.cache in the guest). */
  guestNodeDir?: string;
  environment: BenchEnvironment;
  gitRef?: string;
  /** One line per round, for progress output. */
  onProgress?: (line: string) => void;
}

type Side = 'host' | 'guest';

interface PreparedSide {
  side: Side;
  shell: BenchShell;
  dir: string;
  timer?: CommandTimer;
  node?: NodeOnSide;
}

/**
 * Runs every workload on host and guest. Per workload: `warmup` discarded rounds, then
 * `rounds` measured ones, host and guest ALTERNATING (host, guest, host, guest, ...), so a
 * slow drift of the machine (thermal, other tenants, a CI neighbour) hits both sides alike
 * and round i of each side forms a pair for the per-round ratio. Raw samples are kept.
 */
export async function runBench(options: RunBenchOptions): Promise<BenchRun> {
  const rounds = options.rounds ?? 10;
  const warmup = options.warmup ?? 1;
  if (!Number.isInteger(rounds) || rounds < 1) throw new MacvmError('MACVM_BAD_ARGUMENT', `rounds must be a positive integer, got ${rounds}.`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new MacvmError('MACVM_BAD_ARGUMENT', `warmup must be a whole number ≥ 0, got ${warmup}.`);
  const progress = options.onProgress ?? (() => {});

  const host: PreparedSide = { side: 'host', shell: options.host ?? localShell(), dir: await mkdtemp(join(tmpdir(), 'macvm-bench-')) };
  const guest: PreparedSide = { side: 'guest', shell: options.guest, dir: '' };
  const method: BenchMethod = { rounds, warmup };
  try {
    guest.dir = await makeGuestDir(options.guest, options.guestDir ?? '/tmp');
    host.node = hostNode();
    let guestNodePromise: Promise<NodeOnSide> | undefined;
    const needGuestNode = () => (guestNodePromise ??= guestNode(options.guest, { baseDir: options.guestNodeDir }));

    const functions = options.workloads.filter((w): w is FunctionWorkload => w.kind === 'function');
    if (functions.length > 0) {
      // Before any round, so a guest that cannot run our node fails at once with the reason.
      guest.node = await needGuestNode();
      method.guestNode = guest.node.how;
      await installFnRunner(host);
      await installFnRunner(guest);
    }
    if (options.workloads.some((w) => w.kind === 'command')) {
      const timers = await chooseCommandTimer(host.shell, guest.shell, async () => {
        try {
          guest.node = await needGuestNode();
          method.guestNode = guest.node.how;
          return { host: host.node!.command, guest: guest.node.command };
        } catch (error) {
          if (isMacvmError(error)) return undefined;
          throw error;
        }
      });
      host.timer = timers.host;
      guest.timer = timers.guest;
      method.commandTimer = timers.host.kind;
    }

    const results: WorkloadResult[] = [];
    for (const [index, workload] of options.workloads.entries()) {
      const samples: Record<Side, number[]> = { host: [], guest: [] };
      for (let round = -warmup; round < rounds; round++) {
        for (const side of [host, guest]) {
          const ms = workload.kind === 'command' ? await commandRound(side, workload) : await functionRound(side, workload, index);
          if (round >= 0) samples[side.side].push(ms);
        }
        const label = round < 0 ? `warmup ${round + warmup + 1}/${warmup}` : `round ${round + 1}/${rounds}`;
        progress(`${workload.name}: ${label}`);
      }
      results.push({
        name: workload.name,
        kind: workload.kind,
        host: summarize(samples.host),
        guest: summarize(samples.guest),
        ratio: ratioOfMedians(samples.host, samples.guest),
      });
    }
    return {
      schema: 1,
      runId: `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`,
      at: new Date().toISOString(),
      suite: options.suite,
      ...(options.gitRef ? { gitRef: options.gitRef } : {}),
      environment: options.environment,
      workloads: results,
      method,
    };
  } finally {
    await rm(host.dir, { recursive: true, force: true });
    if (guest.dir) await options.guest.exec(`rm -rf ${shellWord(guest.dir)}`, { reject: false, timeoutMs: 60_000 }).catch(() => {});
  }
}

async function makeGuestDir(guest: BenchShell, base: string): Promise<string> {
  const result = await guest.exec(`mktemp -d ${shellWord(`${base}/macvm-bench.XXXXXX`)}`, { reject: false, timeoutMs: 30_000 });
  const dir = result.stdout.trim();
  if (result.exitCode !== 0 || !dir.startsWith('/')) {
    throw new MacvmError('MACVM_BENCH_INVALID', `Could not make a temp directory under ${base} in the guest: ${result.stderr.trim() || `exit ${result.exitCode}`}`, {
      hint: 'Pass a writable directory as guestDir.',
    });
  }
  return dir;
}

async function installFnRunner(side: PreparedSide): Promise<void> {
  const tinybench = createRequire(import.meta.url).resolve('tinybench');
  await side.shell.writeFile(`${side.dir}/fn-runner.mjs`, FN_RUNNER_SOURCE);
  await side.shell.upload(tinybench, `${side.dir}/tinybench.mjs`);
}

async function commandRound(side: PreparedSide, workload: CommandWorkload): Promise<number> {
  const log = `${side.dir}/out.log`;
  const cwd = side.side === 'guest' ? (workload.guest?.cwd ?? workload.cwd) : workload.cwd;
  const env = side.side === 'guest' ? { ...workload.env, ...workload.guest?.env } : workload.env;
  const result = await side.shell.exec(side.timer!.script(workload.command, log), {
    ...(cwd !== undefined ? { cwd } : {}),
    ...(env && Object.keys(env).length > 0 ? { env } : {}),
    timeoutMs: workload.timeoutMs ?? 600_000,
    reject: false,
  });
  const timed = parseTimerOutput(result.stdout);
  if (!timed) {
    throw new MacvmError('MACVM_BENCH_INVALID', `Workload "${workload.name}": the ${side.timer!.kind} timer printed no measurement on the ${side.side} (exit ${result.exitCode}).`, {
      details: { side: side.side, stdout: result.stdout.slice(-1000), stderr: result.stderr.slice(-1000) },
      hint: result.stderr.trim() ? `It said: ${result.stderr.trim().slice(-300)}` : undefined,
    });
  }
  if (timed.exitCode !== 0) {
    const tail = await side.shell.exec(`tail -c 1500 ${shellWord(log)}`, { reject: false, timeoutMs: 30_000 }).catch(() => undefined);
    throw new MacvmError('MACVM_EXEC_FAILED', `Workload "${workload.name}" failed on the ${side.side} (exit ${timed.exitCode}): ${workload.command}`, {
      details: { side: side.side, output: tail?.stdout ?? '' },
      hint: tail?.stdout.trim() ? `Its output ended with:\n${tail.stdout.trim()}` : 'It printed nothing.',
    });
  }
  return timed.ms;
}

async function functionRound(side: PreparedSide, workload: FunctionWorkload, index: number): Promise<number> {
  const job = `${side.dir}/job-${index}.json`;
  await side.shell.writeFile(
    job,
    JSON.stringify({
      name: workload.name,
      source: workload.source,
      tinybench: `${side.dir}/tinybench.mjs`,
      timeMs: workload.timeMs,
      minIterations: workload.minIterations,
      warmupTimeMs: Math.min(100, workload.timeMs / 5),
      warmupIterations: 5,
    }),
  );
  let result;
  try {
    result = await side.shell.exec(`${side.node!.command} ${shellWord(`${side.dir}/fn-runner.mjs`)} ${shellWord(job)}`, { reject: false, timeoutMs: 600_000 });
  } catch (error) {
    throw new MacvmError('MACVM_EXEC_FAILED', `Workload "${workload.name}" could not run on the ${side.side}: ${messageOf(error)}`, { cause: error });
  }
  const round = parseFnRunnerOutput(result.stdout);
  if (!round || result.exitCode !== 0) {
    throw new MacvmError('MACVM_EXEC_FAILED', `Function workload "${workload.name}" failed on the ${side.side} (exit ${result.exitCode}).`, {
      details: { side: side.side, stderr: result.stderr.slice(-2000) },
      hint: result.stderr.trim() ? result.stderr.trim().split('\n').slice(0, 6).join('\n') : undefined,
    });
  }
  return round.medianMs;
}
