import { MacvmError } from '../errors.js';
import type { BenchShell } from './shell.js';
import { shellWord } from './shell.js';

/**
 * How a command's time is taken INSIDE each side, so the guest's number is not inflated by
 * the SSH round trip. Every timer brackets the same thing — fork+exec of `/bin/sh -c <cmd>`
 * until it exits, output to a log file — and the SAME timer is used on host and guest, so
 * whatever overhead it has is paid on both sides and the ratio compares like with like.
 *
 * Preference, first one both sides have:
 * 1. perl with Time::HiRes — on every macOS guest and most Linux installs; perl's system()
 *    forks the shell directly, so nothing else runs inside the window.
 * 2. `date +%s%N` — GNU date. Costs one extra date exec inside the window (its tail and the
 *    second date's start). busybox date has no %N (it prints a literal "N"), so the probe
 *    checks the output, not the exit code.
 * 3. busybox `adjtimex`, which prints the kernel clock as time.tv_sec / time.tv_usec
 *    (reading it needs no privilege): microseconds, on minimal busybox guests such as
 *    linux-test whose date lacks %N. Same window as date-ns; the output is parsed after it.
 * 4. node (this host's node, uploaded when the guest lacks one — see node-runtime.ts) with
 *    process.hrtime around spawnSync: the last resort, as it costs a ~100 MB upload.
 */
export type TimerKind = 'perl' | 'date-ns' | 'adjtimex' | 'node';

export interface CommandTimer {
  kind: TimerKind;
  /** The shell command that runs `command` with output to `logPath` and prints the marker line. */
  script(command: string, logPath: string): string;
}

const MARKER = 'macvm-bench-ns';

const PERL_TIMER = [
  'use Time::HiRes qw(time);',
  'open(my $out, ">&", \\*STDOUT) or die "dup: $!";',
  'open(STDOUT, ">", $ARGV[1]) or die "log: $!";',
  'open(STDERR, ">&", \\*STDOUT) or die "dup: $!";',
  'my $t0 = time;',
  'system("/bin/sh", "-c", $ARGV[0]);',
  'my $t1 = time;',
  'my $rc = $? == -1 ? 127 : ($? & 127 ? 128 + ($? & 127) : $? >> 8);',
  `printf $out "${MARKER} %.0f %d\\n", ($t1 - $t0) * 1e9, $rc;`,
].join(' ');

const NODE_TIMER = [
  'const { spawnSync } = require("node:child_process");',
  'const fd = require("node:fs").openSync(process.argv[2], "w");',
  'const t0 = process.hrtime.bigint();',
  'const r = spawnSync("/bin/sh", ["-c", process.argv[1]], { stdio: ["ignore", fd, fd] });',
  'const t1 = process.hrtime.bigint();',
  `console.log("${MARKER}", String(t1 - t0), r.status === null ? 128 : r.status);`,
].join(' ');

export function perlTimer(): CommandTimer {
  return { kind: 'perl', script: (command, log) => `perl -e ${shellWord(PERL_TIMER)} ${shellWord(command)} ${shellWord(log)}` };
}

export function dateTimer(): CommandTimer {
  return {
    kind: 'date-ns',
    script: (command, log) =>
      `t0=$(date +%s%N); sh -c ${shellWord(command)} >${shellWord(log)} 2>&1; rc=$?; t1=$(date +%s%N); echo "${MARKER} $((t1 - t0)) $rc"`,
  };
}

/**
 * `tool` is `adjtimex` or `busybox adjtimex`. Both readings are taken raw inside the window
 * and picked apart afterwards with `set --` (no forks), so parsing costs nothing measured.
 */
export function adjtimexTimer(tool: string): CommandTimer {
  const parse = (raw: string, prefix: string) =>
    `set -- $${raw}; while [ $# -gt 1 ]; do case $1 in time.tv_sec:) ${prefix}s=$2;; time.tv_usec:) ${prefix}u=$2;; esac; shift; done`;
  return {
    kind: 'adjtimex',
    script: (command, log) =>
      [
        `a=$(${tool}); sh -c ${shellWord(command)} >${shellWord(log)} 2>&1; rc=$?; b=$(${tool})`,
        parse('a', 'a'),
        parse('b', 'b'),
        `echo "${MARKER} $(( ((bs - as) * 1000000 + bu - au) * 1000 )) $rc"`,
      ].join('; '),
  };
}

/** The adjtimex invocation that prints the clock on this side, if any. */
export async function probeAdjtimex(shell: BenchShell): Promise<string | undefined> {
  for (const tool of ['adjtimex', 'busybox adjtimex']) {
    const result = await shell.exec(tool, { reject: false, timeoutMs: 30_000 }).catch(() => undefined);
    if (result && /time\.tv_sec:\s+\d+/.test(result.stdout) && /time\.tv_usec:\s+\d+/.test(result.stdout)) return tool;
  }
  return undefined;
}

/** `nodeCommand` is the shell words that start node (a path, or loader + library path + node). */
export function nodeTimer(nodeCommand: string): CommandTimer {
  return { kind: 'node', script: (command, log) => `${nodeCommand} -e ${shellWord(NODE_TIMER)} ${shellWord(command)} ${shellWord(log)}` };
}

/** Reads the marker line: elapsed ms and the command's exit code. */
export function parseTimerOutput(stdout: string): { ms: number; exitCode: number } | undefined {
  const match = new RegExp(`^${MARKER} (\\d+) (\\d+)\\s*$`, 'm').exec(stdout);
  if (!match) return undefined;
  return { ms: Number(match[1]) / 1e6, exitCode: Number(match[2]) };
}

/** Whether a side can use `kind` (node is decided by whoever made node available). */
export async function probeTimer(shell: BenchShell, kind: Exclude<TimerKind, 'node'>): Promise<boolean> {
  const probe = kind === 'perl' ? `perl -MTime::HiRes=time -e 'printf "%.6f\\n", time'` : 'date +%s%N';
  const accept = kind === 'perl' ? /^\d+\.\d{6}\s*$/ : /^\d{16,}\s*$/;
  try {
    const result = await shell.exec(probe, { reject: false, timeoutMs: 30_000 });
    return result.exitCode === 0 && accept.test(result.stdout);
  } catch {
    return false;
  }
}

/**
 * The first timer both sides support. `nodeOnBoth` is a lazy "make node available on both
 * sides" step (uploading ~100 MB to the guest), called only when perl and date both fail.
 */
export async function chooseCommandTimer(
  host: BenchShell,
  guest: BenchShell,
  nodeOnBoth: () => Promise<{ host: string; guest: string } | undefined>,
): Promise<{ host: CommandTimer; guest: CommandTimer }> {
  for (const kind of ['perl', 'date-ns'] as const) {
    const [onHost, onGuest] = await Promise.all([probeTimer(host, kind), probeTimer(guest, kind)]);
    if (onHost && onGuest) {
      const timer = kind === 'perl' ? perlTimer() : dateTimer();
      return { host: timer, guest: timer };
    }
  }
  const [hostTool, guestTool] = await Promise.all([probeAdjtimex(host), probeAdjtimex(guest)]);
  if (hostTool && guestTool) return { host: adjtimexTimer(hostTool), guest: adjtimexTimer(guestTool) };
  const node = await nodeOnBoth();
  if (node) return { host: nodeTimer(node.host), guest: nodeTimer(node.guest) };
  throw new MacvmError('MACVM_NOT_SUPPORTED', 'No way to time a command inside the guest: it has neither perl (Time::HiRes), a date with %N nor busybox adjtimex, and this host\'s node cannot run there.', {
    hint: 'Install perl in the guest image, or run the benchmark from a host of the same OS and CPU architecture as the guest.',
  });
}

/**
 * CPU time beside wall time, for commands. The workload runs in a shell (`eval`, in the
 * shell the timer starts, so the timing window is unchanged in kind) whose EXIT trap reads
 *   /proc/$$/schedstat — the shell's own on-CPU time in ns (the kernel's sum_exec_runtime),
 *   /proc/$$/stat fields 16–17 — CPU time of the children it waited for, in clock ticks,
 * with `read` (a builtin: no fork) and writes them to `cpuFile`. A shell loop runs in the
 * shell itself and is timed to the ns; a child process's time arrives in ticks (1/100 s:
 * USER_HZ is 100 on every Linux this runs on), coarse for short children. Both sides run
 * the same wrapper, so the ratio compares like with like. Where there is no /proc (macOS),
 * the file has no numbers and CPU time is simply not measured.
 */
const CPU_MARKER = 'macvm-bench-cpu';
const CLOCK_TICKS_PER_SECOND = 100;

export function cpuWrapped(command: string, cpuFile: string): string {
  const trap = [
    'macvm_rc=$?',
    // stat first: reading it brings the running task's runtime up to date (task_sched_runtime),
    // which schedstat alone would show only as of the last tick or context switch.
    'read -r macvm_t < /proc/$$/stat 2>/dev/null',
    'read -r macvm_s macvm_r < /proc/$$/schedstat 2>/dev/null',
    'set -- ${macvm_t##*") "}',
    `echo "${CPU_MARKER} $macvm_s \${14} \${15}" > "$macvm_f"`,
    'exit $macvm_rc',
  ].join('; ');
  return `macvm_f=${shellWord(cpuFile)}; macvm_c=${shellWord(command)}; trap ${shellWord(trap)} EXIT; eval "$macvm_c"`;
}

/** The CPU time (ms) in a cpuWrapped() file's text, or undefined when it holds none. */
export function parseCpuOutput(text: string): number | undefined {
  const match = new RegExp(`^${CPU_MARKER} (\\d+) (\\d+) (\\d+)\\s*$`, 'm').exec(text);
  if (!match) return undefined;
  return Number(match[1]) / 1e6 + ((Number(match[2]) + Number(match[3])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Whether a side can report a command's CPU time through cpuWrapped(). */
export async function probeCommandCpu(shell: BenchShell, dir: string): Promise<boolean> {
  const file = `${dir}/cpu-probe`;
  const result = await shell
    .exec(`sh -c ${shellWord(cpuWrapped('i=0; while [ $i -lt 100 ]; do i=$((i+1)); done', file))}; cat ${shellWord(file)}`, { reject: false, timeoutMs: 30_000 })
    .catch(() => undefined);
  return result !== undefined && parseCpuOutput(result.stdout) !== undefined;
}
