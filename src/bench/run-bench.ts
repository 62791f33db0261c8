import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MacvmError, isMacvmError } from '../errors.js';
import { MAX_ROUNDS_PER_EXEC, expectedBlockMs, roundsPerExec, type BlockTiming } from './batching.js';
import { commandBlock } from './command-rounds.js';
import { functionBlock, installFnRunner } from './function-rounds.js';
import { guestNode, hostNode, type NodeOnSide } from './node-runtime.js';
import { BATCHES, batchRatioInterval } from './batch-means.js';
import type { BenchEnvironment, BenchMethod, BenchRun, SampleStats, TimeBasis, WorkloadResult } from '../shared/bench-records.js';
import { localShell, shellWord, type BenchShell } from './shell.js';
import { assertSamplingOptions } from './options.js';
import { RoundSampler, SAMPLING_DEFAULTS, type SamplingOutcome, type SamplingPlan } from './sampling.js';
import { withoutSteal, type PreparedSide, type Reading, type Side, type SideBlock } from './side.js';
import { median, summarize } from './stats.js';
import { chooseCommandTimer, probeCommandCpu } from './timers.js';
import type { FunctionWorkload, Workload } from './workloads.js';

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
  /**
   * For the project's own side-by-side benchmarks: the most rounds per exec (default
   * MAX_ROUNDS_PER_EXEC; 1 runs one round per exec, as before batching), and whether the
   * guest's vCPU clock is used (default true).
   */
  maxRoundsPerExec?: number;
  useCpuClock?: boolean;
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
  const guest: PreparedSide = { side: 'guest', shell: options.useCpuClock === false ? withoutCpuClock(options.guest) : options.guest, dir: '' };
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
      method.guestCpuClock = (await guest.shell.cpuClock?.()) !== undefined;
    }
    const commandBasis: TimeBasis = method.commandCpu ? (method.guestCpuClock ? 'host-cpu' : 'cpu') : 'wall';

    const results: WorkloadResult[] = [];
    for (const [index, workload] of options.workloads.entries()) {
      const limits = { maxRoundsPerExec: options.maxRoundsPerExec ?? MAX_ROUNDS_PER_EXEC };
      results.push(await sampleWorkload(workload, index, host, guest, plan, limits, workload.kind === 'command' ? commandBasis : 'wall', progress));
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

/**
 * Interleaved blocks of one workload until the sampler says stop: an exec on the host, an
 * exec on the guest, each of k rounds (batching.ts picks k from the block before; the first
 * block is one round), round i of the host paired with round i of the guest. Both clocks are
 * read where a side allows; which one the samples and the ratio use:
 * - a command: time on a host CPU ('host-cpu') when both sides report CPU time and the guest
 *   is a VM whose vCPU clock the host reads (cpuClock: qemu) — the guest's CPU time with the
 *   steal the host counted taken out (side.ts withoutSteal), beside the host's own CPU time.
 *   A host busy with other work stretches wall clocks but hardly CPU time (measured here
 *   under load ≈ 10: host wall 44–480 ms, CPU 28–51 ms for the same shell loop), and a TCG
 *   guest has no steal accounting of its own, so its CPU time alone would still follow the
 *   load (load ≈ 7.5: guest CPU varied ±30 %, net of steal ±20 %). Without a vCPU clock:
 *   CPU time as each side counts it ('cpu'). Should a round come back without CPU time (the
 *   command set its own EXIT trap), the workload falls back to wall time.
 * - a function: wall time, i.e. tinybench's MEDIAN call time of the round. Calls are short, so
 *   a preemption hits a minority of them and the median skips it; CPU time (process.cpuUsage()
 *   over all calls) is a mean and cannot — it is recorded beside, not used.
 */
async function sampleWorkload(
  workload: Workload,
  index: number,
  host: PreparedSide,
  guest: PreparedSide,
  plan: SamplingPlan,
  limits: { maxRoundsPerExec: number },
  startBasis: TimeBasis,
  progress: (line: string) => void,
): Promise<WorkloadResult> {
  const readings: Record<Side, Reading[]> = { host: [], guest: [] };
  /** Per guest round: its CPU time net of steal, where the host read the vCPU clock. */
  const guestNet: Array<number | undefined> = [];
  const blockSizes: number[] = [];
  const vcpuTotal = { runMs: 0, waitMs: 0 };
  let basis = startBasis;
  const value = (side: Side, round: number): number => {
    const r = readings[side][round]!;
    if (basis === 'wall') return r.wallMs;
    return basis === 'host-cpu' && side === 'guest' ? guestNet[round]! : r.cpuMs!;
  };
  const fits = (round: number): boolean =>
    basis === 'wall' || (readings.host[round]!.cpuMs !== undefined && readings.guest[round]!.cpuMs !== undefined && (basis === 'cpu' || guestNet[round] !== undefined));
  let sampler = new RoundSampler(plan);
  let outcome: SamplingOutcome | undefined;
  let last: BlockTiming | undefined;
  const started = performance.now();
  while (!outcome) {
    const timeLeft = plan.rounds === 'auto' ? plan.maxTimeMs - (performance.now() - started) : Number.POSITIVE_INFINITY;
    // A fixed count spreads over at least BATCHES execs, so its CI has all its batches.
    const spread = plan.rounds === 'auto' ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(plan.rounds / BATCHES));
    const wanted = () => Math.min(limits.maxRoundsPerExec, sampler.roundsLeft, spread);
    const k = last ? roundsPerExec(last, wanted(), timeLeft) : 1;
    const blocks: SideBlock[] = [];
    for (const side of [host, guest]) {
      blocks.push(workload.kind === 'command' ? await commandBlock(side, workload, k) : await functionBlock(side, workload, index, k));
    }
    const [hostBlock, guestBlock] = blocks as [SideBlock, SideBlock];
    const first = readings.host.length;
    readings.host.push(...hostBlock.rounds);
    readings.guest.push(...guestBlock.rounds);
    for (const r of guestBlock.rounds) guestNet.push(guestBlock.vcpu && r.cpuMs !== undefined ? withoutSteal(r.cpuMs, guestBlock.vcpu) : undefined);
    if (guestBlock.vcpu) {
      vcpuTotal.runMs += guestBlock.vcpu.runMs;
      vcpuTotal.waitMs += guestBlock.vcpu.waitMs;
    }
    blockSizes.push(k);
    last = { rounds: k, guestExecMs: guestBlock.execMs, guestRoundsMs: guestBlock.roundsMs, hostExecMs: hostBlock.execMs, hostRoundsMs: hostBlock.roundsMs };
    const rounds = Array.from({ length: k }, (_, i) => first + i);
    if (!rounds.every(fits)) {
      // A clock went missing: the next clock down for the whole workload, its rounds fed again.
      basis = basis === 'host-cpu' && rounds.every((round) => readings.host[round]!.cpuMs !== undefined && readings.guest[round]!.cpuMs !== undefined) ? 'cpu' : 'wall';
      sampler = new RoundSampler(plan);
      let round = 0;
      for (const size of blockSizes.slice(0, -1)) {
        const ids = Array.from({ length: size }, (_, i) => round + i);
        sampler.addBlock(ids.map((i) => value('host', i)), ids.map((i) => value('guest', i)), 0, 0);
        round += size;
      }
    }
    const elapsed = performance.now() - started;
    const nextK = roundsPerExec(last, wanted(), plan.maxTimeMs - elapsed);
    outcome = sampler.addBlock(rounds.map((i) => value('host', i)), rounds.map((i) => value('guest', i)), elapsed, expectedBlockMs(last, nextK));
    progress(`${workload.name}: ${sampler.warmingUp ? `warm-up round ${sampler.host.length}` : `round ${sampler.measured}`}${k > 1 ? ` (${k} per exec)` : ''}`);
  }
  const elapsedMs = performance.now() - started;
  const kept = sampler.host.length;
  const side = (name: Side): SampleStats => {
    const stats: SampleStats = { ...summarize(sampler.measuredSamples(name)), warmup: sampler.warmupSamples(name) };
    const beside = (clock: 'wall' | 'cpu', pick: (r: Reading) => number | undefined) => {
      if (basis === clock) return;
      const values = readings[name].slice(0, kept).map(pick);
      if (values.every((v): v is number => v !== undefined)) {
        const measured = values.slice(outcome!.warmupRounds);
        stats[clock] = { samples: measured, warmup: values.slice(0, outcome!.warmupRounds), medianMs: median(measured) };
      }
    };
    beside('wall', (r) => r.wallMs);
    beside('cpu', (r) => r.cpuMs);
    return stats;
  };
  const measuredBlocks = sampler.measuredBlocks();
  return {
    name: workload.name,
    kind: workload.kind,
    host: side('host'),
    guest: side('guest'),
    ratio: batchRatioInterval(sampler.measuredSamples('host'), sampler.measuredSamples('guest'), measuredBlocks),
    basis,
    sampling: {
      rounds: sampler.measured,
      warmupRounds: outcome.warmupRounds,
      warmupEndedBy: outcome.warmupEndedBy,
      endedBy: outcome.endedBy,
      halfWidth: outcome.halfWidth,
      elapsedMs,
      blocks: new Set(measuredBlocks).size,
      blockIds: measuredBlocks,
      roundsPerExec: Math.max(...blockSizes),
      ...(vcpuTotal.runMs + vcpuTotal.waitMs > 0 ? { guestSteal: vcpuTotal.waitMs / (vcpuTotal.runMs + vcpuTotal.waitMs) } : {}),
    },
  };
}

/** The same shell without its vCPU clock (useCpuClock: false). */
function withoutCpuClock(shell: BenchShell): BenchShell {
  return {
    exec: (command, options) => shell.exec(command, options),
    upload: (localPath, remotePath) => shell.upload(localPath, remotePath),
    writeFile: (remotePath, data, options) => shell.writeFile(remotePath, data, options),
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
