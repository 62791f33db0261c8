import { MacvmError } from '../errors.js';
import { shellWord } from './shell.js';
import { withVcpuClock, type PreparedSide, type Reading, type SideBlock } from './side.js';
import { cpuWrapped, parseCpuOutput, parseTimerOutput } from './timers.js';
import type { CommandWorkload } from './workloads.js';

/** Starts each round's part of a batch's output, so the rounds' marker lines are told apart. */
const ROUND_MARKER = 'macvm-bench-round';

/**
 * The script that runs `command` `rounds` times in one exec. Each round is what one round
 * always was: the side's timer around the CPU-time wrapper, output to a log of its own (so
 * a failing round's log is still there to quote), the CPU figure read after the timer's
 * window closes.
 */
export function commandBatchScript(side: Pick<PreparedSide, 'dir' | 'timer'>, command: string, rounds: number): string {
  const parts: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const cpuFile = `${side.dir}/cpu-${round}`;
    parts.push(
      `echo ${ROUND_MARKER} ${round}`,
      `rm -f ${shellWord(cpuFile)}`,
      side.timer!.script(cpuWrapped(command, cpuFile), logPath(side.dir, round)),
      `cat ${shellWord(cpuFile)} 2>/dev/null`,
      // The CPU file ends in a newline; a missing one must not glue the next marker to it.
      'echo',
    );
  }
  return parts.join('; ');
}

/** Each round's part of a batch's output, by the round markers. */
export function splitRounds(stdout: string): string[] {
  return stdout.split(new RegExp(`^${ROUND_MARKER} \\d+\\s*$`, 'm')).slice(1);
}

function logPath(dir: string, round: number): string {
  return `${dir}/out-${round}.log`;
}

/** `rounds` runs of a command workload in one exec on one side. */
export async function commandBlock(side: PreparedSide, workload: CommandWorkload, rounds: number): Promise<SideBlock> {
  const cwd = side.side === 'guest' ? (workload.guest?.cwd ?? workload.cwd) : workload.cwd;
  const env = side.side === 'guest' ? { ...workload.env, ...workload.guest?.env } : workload.env;
  const { value: result, execMs, vcpu } = await withVcpuClock(side.shell, () =>
    side.shell.exec(commandBatchScript(side, workload.command, rounds), {
      ...(cwd !== undefined ? { cwd } : {}),
      ...(env && Object.keys(env).length > 0 ? { env } : {}),
      timeoutMs: (workload.timeoutMs ?? 600_000) * rounds,
      reject: false,
    }),
  );
  const parts = splitRounds(result.stdout);
  const readings: Reading[] = [];
  for (let round = 0; round < rounds; round++) {
    const part = parts[round] ?? '';
    const timed = parseTimerOutput(part);
    if (!timed) {
      throw new MacvmError('MACVM_BENCH_INVALID', `Workload "${workload.name}": the ${side.timer!.kind} timer printed no measurement on the ${side.side} (exit ${result.exitCode}).`, {
        details: { side: side.side, stdout: result.stdout.slice(-1000), stderr: result.stderr.slice(-1000) },
        hint: result.stderr.trim() ? `It said: ${result.stderr.trim().slice(-300)}` : undefined,
      });
    }
    if (timed.exitCode !== 0) {
      const tail = await side.shell.exec(`tail -c 1500 ${shellWord(logPath(side.dir, round))}`, { reject: false, timeoutMs: 30_000 }).catch(() => undefined);
      throw new MacvmError('MACVM_EXEC_FAILED', `Workload "${workload.name}" failed on the ${side.side} (exit ${timed.exitCode}): ${workload.command}`, {
        details: { side: side.side, output: tail?.stdout ?? '' },
        hint: tail?.stdout.trim() ? `Its output ended with:\n${tail.stdout.trim()}` : 'It printed nothing.',
      });
    }
    const cpuMs = parseCpuOutput(part);
    readings.push(cpuMs === undefined ? { wallMs: timed.ms } : { wallMs: timed.ms, cpuMs });
  }
  return { rounds: readings, roundsMs: readings.reduce((sum, r) => sum + r.wallMs, 0), execMs, ...(vcpu ? { vcpu } : {}) };
}
