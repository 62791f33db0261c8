import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import { FN_RUNNER_SOURCE, parseFnRunnerOutput } from './fn-runner-source.js';
import { guestNode, hostNode, type NodeOnSide } from './node-runtime.js';
import { ratioOfMedians } from './ratio.js';
import type { BenchEnvironment, BenchMethod, BenchRun, SampleStats, TimeBasis, WorkloadResult } from '../shared/bench-records.js';
import { localShell, shellWord, type BenchShell } from './shell.js';
import { assertSamplingOptions } from './options.js';
import { RoundSampler, SAMPLING_DEFAULTS, type SamplingOutcome, type SamplingPlan } from './sampling.js';
import { median, summarize } from './stats.js';
import { chooseCommandTimer, cpuWrapped, parseCpuOutput, parseTimerOutput, probeCommandCpu, type CommandTimer } from './timers.js';
import type { CommandWorkload, FunctionWorkload, Workload } from './workloads.js';

export interface RunBenchOptions {
  suite: string;
  workloads: Workload[];
  /** The guest (a GuestSession or MacVM fits). */
  guest: BenchShell;
  /** The host side; localShell() unless a test substitutes another. */
  host?: BenchShell;
  /**
   * Measured rounds per side: 'auto' (default) runs until the ratio's 95 % CI half-width is at
   * most `precision` or `maxTime` is spent; a number runs exactly that many. Fewer than 6
   * cannot give a 95 % median CI.
   */
  rounds?: number | 'auto';
  /**
   * Rounds per side run first and discarded (caches, page cache, JIT, CPU clocks): 'auto'
   * (default) until the samples stop trending (sampling.ts), or a fixed number.
   */
  warmup?: number | 'auto';
  /** Target relative half-width of the ratio's 95 % CI for auto rounds (default 0.02 = ±2 %). */
  precision?: number;
  /** Time budget per workload for auto rounds, warm-up included, ms (default 60 000). */
  maxTime?: number;
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
 * Runs every workload on host and guest. Per workload: warm-up rounds, then measured ones
 * (how many of each: sampling.ts), host and guest ALTERNATING (host, guest, host, guest, ...),
 * so a slow drift of the machine (thermal, other tenants, a CI neighbour) hits both sides
 * alike and round i of each side forms a pair for the per-round ratio. Raw samples are kept,
 * the discarded warm-up ones too (marked as such).
 */
export async function runBench(options: RunBenchOptions): Promise<BenchRun> {
  assertSamplingOptions(options, `runBench("${options.suite}") options`);
  const plan: SamplingPlan = {
    ...SAMPLING_DEFAULTS,
    rounds: options.rounds ?? SAMPLING_DEFAULTS.rounds,
    warmup: options.warmup ?? SAMPLING_DEFAULTS.warmup,
    precision: options.precision ?? SAMPLING_DEFAULTS.precision,
    maxTimeMs: options.maxTime ?? SAMPLING_DEFAULTS.maxTimeMs,
  };
  const progress = options.onProgress ?? (() => {});

  const host: PreparedSide = { side: 'host', shell: options.host ?? localShell(), dir: await mkdtemp(join(tmpdir(), 'macvm-bench-')) };
  const guest: PreparedSide = { side: 'guest', shell: options.guest, dir: '' };
  const method: BenchMethod = {
    rounds: plan.rounds,
    warmup: plan.warmup,
    ...(plan.rounds === 'auto' ? { precision: plan.precision, maxTimeMs: plan.maxTimeMs } : {}),
  };
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
      const [hostCpu, guestCpu] = await Promise.all([probeCommandCpu(host.shell, host.dir), probeCommandCpu(guest.shell, guest.dir)]);
      method.commandCpu = hostCpu && guestCpu;
    }

    const results: WorkloadResult[] = [];
    for (const [index, workload] of options.workloads.entries()) {
      results.push(await sampleWorkload(workload, index, host, guest, plan, method.commandCpu === true, progress));
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

interface Reading {
  wallMs: number;
  cpuMs?: number;
}

/**
 * Interleaved rounds of one workload until the sampler says stop. Both clocks are read where
 * a side allows; which one the samples and the ratio use:
 * - a command: CPU time when both sides report it — one execution per round, and a host busy
 *   with other work stretches its wall clock but hardly its CPU time (measured here under load
 *   ≈ 10: host wall 44–480 ms, CPU 28–51 ms for the same shell loop). Should a round come back
 *   without CPU time (the command set its own EXIT trap), the workload falls back to wall time.
 * - a function: wall time, i.e. tinybench's MEDIAN call time of the round. Calls are short, so
 *   a preemption hits a minority of them and the median skips it; CPU time (process.cpuUsage()
 *   over all calls) is a mean and cannot — it is recorded beside, not used.
 * Caveat for emulated guests (qemu TCG): the guest kernel has no steal-time accounting there,
 *   so time the host takes the vCPU away counts as the guest process's CPU time; on a loaded
 *   host the guest side is as noisy on either clock, and a CPU-time ratio reads high.
 */
async function sampleWorkload(
  workload: Workload,
  index: number,
  host: PreparedSide,
  guest: PreparedSide,
  plan: SamplingPlan,
  cpuPossible: boolean,
  progress: (line: string) => void,
): Promise<WorkloadResult> {
  const readings: Record<Side, Reading[]> = { host: [], guest: [] };
  let basis: TimeBasis = cpuPossible && workload.kind === 'command' ? 'cpu' : 'wall';
  const value = (r: Reading) => (basis === 'cpu' ? r.cpuMs! : r.wallMs);
  let sampler = new RoundSampler(plan);
  let outcome: SamplingOutcome | undefined;
  const started = performance.now();
  while (!outcome) {
    const roundStart = performance.now();
    for (const side of [host, guest]) {
      readings[side.side].push(workload.kind === 'command' ? await commandRound(side, workload) : await functionRound(side, workload, index));
    }
    const now = performance.now();
    const last = readings.host.length - 1;
    if (basis === 'cpu' && (readings.host[last]!.cpuMs === undefined || readings.guest[last]!.cpuMs === undefined)) {
      basis = 'wall';
      sampler = new RoundSampler(plan);
      for (let i = 0; i < last; i++) sampler.add(value(readings.host[i]!), value(readings.guest[i]!), 0, 0);
    }
    outcome = sampler.add(value(readings.host[last]!), value(readings.guest[last]!), now - started, now - roundStart);
    progress(`${workload.name}: ${sampler.warmingUp ? `warm-up round ${sampler.host.length}` : `round ${sampler.measured}`}`);
  }
  const elapsedMs = performance.now() - started;
  const side = (name: Side): SampleStats => {
    const stats: SampleStats = { ...summarize(sampler.measuredSamples(name)), warmup: sampler.warmupSamples(name) };
    const other = basis === 'cpu' ? 'wall' : 'cpu';
    const values = readings[name].map((r) => (other === 'wall' ? r.wallMs : r.cpuMs));
    if (values.every((v): v is number => v !== undefined)) {
      const measured = values.slice(outcome!.warmupRounds);
      stats[other] = { samples: measured, warmup: values.slice(0, outcome!.warmupRounds), medianMs: median(measured) };
    }
    return stats;
  };
  return {
    name: workload.name,
    kind: workload.kind,
    host: side('host'),
    guest: side('guest'),
    ratio: ratioOfMedians(sampler.measuredSamples('host'), sampler.measuredSamples('guest')),
    basis,
    sampling: {
      rounds: sampler.measured,
      warmupRounds: outcome.warmupRounds,
      warmupEndedBy: outcome.warmupEndedBy,
      endedBy: outcome.endedBy,
      halfWidth: outcome.halfWidth,
      elapsedMs,
    },
  };
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

async function commandRound(side: PreparedSide, workload: CommandWorkload): Promise<Reading> {
  const log = `${side.dir}/out.log`;
  const cpuFile = `${side.dir}/cpu`;
  const cwd = side.side === 'guest' ? (workload.guest?.cwd ?? workload.cwd) : workload.cwd;
  const env = side.side === 'guest' ? { ...workload.env, ...workload.guest?.env } : workload.env;
  // The CPU figure is read after the timer's window closes, in the same exec.
  const script = `rm -f ${shellWord(cpuFile)}; ${side.timer!.script(cpuWrapped(workload.command, cpuFile), log)}; cat ${shellWord(cpuFile)} 2>/dev/null`;
  const result = await side.shell.exec(script, {
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
  const cpuMs = parseCpuOutput(result.stdout);
  return cpuMs === undefined ? { wallMs: timed.ms } : { wallMs: timed.ms, cpuMs };
}

async function functionRound(side: PreparedSide, workload: FunctionWorkload, index: number): Promise<Reading> {
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
  return round.cpuMs === undefined ? { wallMs: round.medianMs } : { wallMs: round.medianMs, cpuMs: round.cpuMs };
}
