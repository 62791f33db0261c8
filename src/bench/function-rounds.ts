import { createRequire } from 'node:module';
import { MacvmError, messageOf } from '../errors.js';
import { FN_RUNNER_SOURCE, parseFnRunnerOutput } from './fn-runner-source.js';
import { shellWord } from './shell.js';
import { withVcpuClock, type PreparedSide, type SideBlock } from './side.js';
import type { FunctionWorkload } from './workloads.js';

/** Puts the runner script and tinybench in the side's temp dir. */
export async function installFnRunner(side: PreparedSide): Promise<void> {
  const tinybench = createRequire(import.meta.url).resolve('tinybench');
  await side.shell.writeFile(`${side.dir}/fn-runner.mjs`, FN_RUNNER_SOURCE);
  await side.shell.upload(tinybench, `${side.dir}/tinybench.mjs`);
}

/** `rounds` tinybench rounds of a function workload in one node process on one side. */
export async function functionBlock(side: PreparedSide, workload: FunctionWorkload, index: number, rounds: number): Promise<SideBlock> {
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
      rounds,
    }),
  );
  let run;
  try {
    run = await withVcpuClock(side.shell, () =>
      side.shell.exec(`${side.node!.command} ${shellWord(`${side.dir}/fn-runner.mjs`)} ${shellWord(job)}`, { reject: false, timeoutMs: 600_000 * rounds }),
    );
  } catch (error) {
    throw new MacvmError('MACVM_EXEC_FAILED', `Workload "${workload.name}" could not run on the ${side.side}: ${messageOf(error)}`, { cause: error });
  }
  const result = run.value;
  const results = parseFnRunnerOutput(result.stdout);
  if (results.length < rounds || result.exitCode !== 0) {
    throw new MacvmError('MACVM_EXEC_FAILED', `Function workload "${workload.name}" failed on the ${side.side} (exit ${result.exitCode}).`, {
      details: { side: side.side, stderr: result.stderr.slice(-2000) },
      hint: result.stderr.trim() ? result.stderr.trim().split('\n').slice(0, 6).join('\n') : undefined,
    });
  }
  const readings = results.slice(0, rounds).map((round) => (round.cpuMs === undefined ? { wallMs: round.medianMs } : { wallMs: round.medianMs, cpuMs: round.cpuMs }));
  // A round's own wall time, for batching: reported by newer runners; else the median call × calls.
  const roundsMs = results.slice(0, rounds).reduce((sum, round) => sum + (round.roundMs ?? round.medianMs * round.calls), 0);
  return { rounds: readings, roundsMs, execMs: run.execMs, ...(run.vcpu ? { vcpu: run.vcpu } : {}) };
}
