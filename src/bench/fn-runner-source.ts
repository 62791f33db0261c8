/**
 * The script that runs ONE round of a JS function workload under tinybench, the same on
 * host and guest (written to a file on each side and started with node). It reads a job
 * file, rebuilds the function from its source text, and prints one marker line of JSON.
 *
 * The function travels as fn.toString(), so it must be self-contained: no variables from
 * the enclosing scope. `require` is provided (for node: built-ins); it may be async.
 * Each round is a fresh process on both sides, so neither side keeps a warmer JIT.
 * Besides the median call time (wall clock) it reports CPU time per call (process.cpuUsage()).
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
const bench = new Bench({
  time: job.timeMs,
  iterations: job.minIterations,
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
await bench.run();
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
}));
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
}

export function parseFnRunnerOutput(stdout: string): FnRoundResult | undefined {
  const line = stdout.split('\n').find((l) => l.startsWith(`${FN_MARKER} `));
  if (!line) return undefined;
  try {
    const value = JSON.parse(line.slice(FN_MARKER.length + 1)) as FnRoundResult;
    return typeof value.medianMs === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}
