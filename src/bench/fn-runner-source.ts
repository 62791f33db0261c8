/**
 * The script that runs rounds of a JS function workload under tinybench, the same on host
 * and guest (written to a file on each side and started with node). It reads a job file,
 * rebuilds the function from its source text, and prints one marker line of JSON per round.
 *
 * The function travels as fn.toString(), so it must be self-contained: no variables from
 * the enclosing scope. `require` is provided (for node: built-ins); it may be async.
 * Each exec is a fresh process on both sides, so neither side keeps a warmer JIT; it runs
 * `rounds` rounds (batching.ts), each a tinybench run of its own, so a 1–2 s node start in a
 * TCG guest is paid once for several samples; tinybench's warm-up runs before the first
 * round only, as the later ones find the JIT warm.
 * Besides the median call time (wall clock) it reports CPU time per call (process.cpuUsage())
 * and the round's own wall time.
 */
export const FN_MARKER = 'macvm-bench-fn';

export const FN_RUNNER_SOURCE = `import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { Bench } = await import(pathToFileURL(job.tinybench).href);
const require = createRequire(import.meta.url);
const fn = new Function('require', 'return (' + job.source + ');')(require);
if (typeof fn !== 'function') throw new Error('the workload source is not a function');
for (let round = 0; round < (job.rounds ?? 1); round++) {
  // The process's first round warms the JIT up; later ones in the same process start warm.
  const bench = new Bench({
    time: job.timeMs,
    iterations: job.minIterations,
    warmup: round === 0,
    warmupTime: job.warmupTimeMs,
    warmupIterations: job.warmupIterations,
    throws: true,
  });
  // CPU time of the measured phase only (tinybench calls these hooks for 'warmup' and 'run').
  let cpuStart;
  let cpu;
  bench.add(job.name, fn, {
    beforeAll(mode) { if (mode === 'run') cpuStart = process.cpuUsage(); },
    afterAll(mode) { if (mode === 'run') cpu = process.cpuUsage(cpuStart); },
  });
  const started = performance.now();
  await bench.run();
  const roundMs = performance.now() - started;
  const result = bench.tasks[0].result;
  if (result.state !== 'completed') {
    console.error('workload ' + result.state + (result.error ? ': ' + (result.error.stack || result.error) : ''));
    process.exit(3);
  }
  console.log('${FN_MARKER} ' + JSON.stringify({
    medianMs: result.latency.p50,
    meanMs: result.latency.mean,
    calls: result.latency.samplesCount,
    cpuMs: cpu ? (cpu.user + cpu.system) / 1000 / result.latency.samplesCount : undefined,
    roundMs,
  }));
}
`;

export interface FnRoundResult {
  /** Median call time in this round (the round's sample). */
  medianMs: number;
  meanMs: number;
  calls: number;
  /**
   * Process CPU time (user + system, all threads) of the measured calls divided by their
   * number, ms: includes tinybench's per-call bookkeeping, the same on both sides.
   */
  cpuMs?: number;
  /** Wall time of the whole round (tinybench's warm-up and measured calls), ms. */
  roundMs?: number;
}

/** Every round's result, in order; a line that is not a well-formed result ends the list. */
export function parseFnRunnerOutput(stdout: string): FnRoundResult[] {
  const rounds: FnRoundResult[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith(`${FN_MARKER} `)) continue;
    try {
      const value = JSON.parse(line.slice(FN_MARKER.length + 1)) as FnRoundResult;
      if (typeof value.medianMs !== 'number') break;
      rounds.push(value);
    } catch {
      break;
    }
  }
  return rounds;
}
