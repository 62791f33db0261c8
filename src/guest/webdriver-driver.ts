import { MacvmError } from '../errors.js';
import type { GuestSession } from './types.js';

/** A POSIX-shell single-quoted word. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Runs `script` under /bin/sh whatever the login shell is (zsh on macOS, fish for some). */
function runSh(session: GuestSession, script: string, timeoutMs = 20_000) {
  return session.exec(`/bin/sh -c ${shQuote(script)}`, { reject: false, timeoutMs });
}

/** Shell condition: $pid runs and is not a zombie (an exited driver may linger unreaped, and kill -0 still succeeds on it). */
const IS_ALIVE =
  '{ kill -0 $pid 2>/dev/null && { if [ -r /proc/$pid/stat ]; then state=$(sed "s/.*) //" /proc/$pid/stat | cut -c1); else state=$(ps -o stat= -p $pid 2>/dev/null | cut -c1); fi; [ "$state" != Z ]; }; }';
const LOG_MARKER = '--- macvm: driver log ---';
const EARLY_EXIT_SECONDS = 0.3;

export interface DriverLaunch {
  /** Name on the guest's PATH or an absolute path. */
  executable: string;
  /** The port the driver is told to listen on (on the guest's loopback). */
  port: number;
  /** The driver's argv after the executable (including the port). */
  args: readonly string[];
  /** Browser binaries to look for, first found wins (chrome: chromium, google-chrome...). Empty: none needed. */
  browserCandidates?: readonly string[];
}

export type LaunchOutcome =
  /** exitedLog: set (to the driver's log tail) when the driver was already gone moments after its start. */
  | { kind: 'started'; driver: GuestDriver; browserBinary?: string; exitedLog?: string }
  | { kind: 'missing'; what: 'driver' | 'browser'; output: string };

/**
 * A WebDriver server running inside the guest, started over the guest session. It runs in
 * a private temp dir (its log, the browser profile), detached from the SSH channel
 * (setsid, or nohup where there is no setsid, as on macOS), and is known by its PID.
 * stop() signals that PID — the whole process group when setsid made one, so the browser
 * the driver spawned goes too — and removes the temp dir.
 */
export class GuestDriver {
  private stopped?: Promise<void>;

  private constructor(
    private readonly session: GuestSession,
    readonly executable: string,
    readonly pid: number,
    readonly port: number,
    readonly tempDir: string,
    /** True when the driver leads its own process group (setsid). */
    readonly processGroup: boolean,
  ) {}

  get logPath(): string {
    return `${this.tempDir}/driver.log`;
  }

  static async launch(session: GuestSession, launch: DriverLaunch): Promise<LaunchOutcome> {
    const argv = launch.args.map(shQuote).join(' ');
    const candidates = launch.browserCandidates ?? [];
    const script = [
      `driver=$(command -v ${shQuote(launch.executable)}) || { echo missing=driver; exit 3; }`,
      'browser=',
      candidates.length ? `for b in ${candidates.map(shQuote).join(' ')}; do p=$(command -v "$b") && { browser=$p; break; }; done` : ':',
      candidates.length ? '[ -n "$browser" ] || { echo missing=browser; exit 3; }' : ':',
      'dir=$(mktemp -d "${TMPDIR:-/tmp}/macvm-driver.XXXXXX") || exit 4',
      'chmod 700 "$dir"; cd "$dir" || exit 4',
      'if command -v setsid >/dev/null 2>&1; then',
      `  setsid "$driver" ${argv} >driver.log 2>&1 </dev/null &`,
      '  echo group=1',
      'else',
      `  nohup "$driver" ${argv} >driver.log 2>&1 </dev/null &`,
      '  echo group=0',
      'fi',
      'pid=$!',
      'echo "pid=$pid"; echo "dir=$dir"; echo "driver=$driver"; echo "browser=$browser"',
      // A driver that cannot start (bad install, port taken) exits at once: look after a
      // moment in this same round trip, and bring its log back if it is gone.
      `sleep ${EARLY_EXIT_SECONDS}`,
      `if ${IS_ALIVE}; then echo alive=1; else echo alive=0; echo ${LOG_MARKER}; tail -n 40 driver.log; fi`,
    ].join('\n');
    const result = await runSh(session, script);
    const fields = parseFields(result.stdout);
    if (result.exitCode === 3) {
      return { kind: 'missing', what: fields.missing === 'browser' ? 'browser' : 'driver', output: `${result.stdout}${result.stderr}` };
    }
    const pid = Number(fields.pid);
    if (result.exitCode !== 0 || !Number.isInteger(pid) || pid <= 0 || !fields.dir) {
      throw new MacvmError('MACVM_DRIVER_CRASHED', `Could not start ${launch.executable} in the guest (exit ${result.exitCode}): ${(result.stderr || result.stdout).trim()}`, {
        details: { stdout: result.stdout, stderr: result.stderr },
      });
    }
    const driver = new GuestDriver(session, fields.driver || launch.executable, pid, launch.port, fields.dir, fields.group === '1');
    const markerAt = result.stdout.indexOf(`${LOG_MARKER}\n`);
    const exitedLog = fields.alive === '0' ? (markerAt === -1 ? '' : result.stdout.slice(markerAt + LOG_MARKER.length + 1).trimEnd()) : undefined;
    return { kind: 'started', driver, browserBinary: fields.browser || undefined, exitedLog };
  }

  /** Running, and not a zombie. */
  async alive(): Promise<boolean> {
    const result = await runSh(this.session, `pid=${this.pid}; ${IS_ALIVE}`, 10_000);
    return result.exitCode === 0;
  }

  /** The last lines of the driver's own log ('' when it is gone or empty). */
  async logTail(lines = 40): Promise<string> {
    if (this.session.closed) return '';
    const result = await runSh(this.session, `tail -n ${lines} ${shQuote(this.logPath)} 2>/dev/null`, 10_000).catch(() => undefined);
    return result?.stdout.trimEnd() ?? '';
  }

  /**
   * Stops the driver (TERM, then KILL after ~3 s) and removes its temp dir. It checks the PID
   * still runs our driver first (its command line names our executable), so a PID reused
   * after the driver died is never signalled. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= this.stopOnce();
    return this.stopped;
  }

  private async stopOnce(): Promise<void> {
    // `kill -TERM -PID` signals the group; dash's kill builtin does not take `--`.
    const target = this.processGroup ? `-${this.pid}` : `${this.pid}`;
    const script = [
      `pid=${this.pid}`,
      'cmdline() { if [ -r /proc/$pid/cmdline ]; then tr "\\000" " " </proc/$pid/cmdline; else ps -p $pid -o args= 2>/dev/null; fi; }',
      `if kill -0 $pid 2>/dev/null && cmdline | grep -qF -- ${shQuote(basename(this.executable))}; then`,
      `  kill -TERM ${target} 2>/dev/null || kill -TERM $pid 2>/dev/null`,
      '  i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done',
      `  kill -KILL ${target} 2>/dev/null`,
      '  sleep 0.1',
      'fi',
      // The browser the driver spawned shares the group; give it a moment to go before its profile dir is removed.
      `rm -rf ${shQuote(this.tempDir)}`,
      'if kill -0 $pid 2>/dev/null && cmdline | grep -qF -- ' + shQuote(basename(this.executable)) + '; then echo still-running; exit 5; fi',
    ].join('\n');
    const result = await runSh(this.session, script, 20_000);
    if (result.exitCode !== 0) {
      throw new MacvmError('MACVM_STOP_FAILED', `The guest's ${basename(this.executable)} (pid ${this.pid}) did not stop: ${(result.stdout + result.stderr).trim()}`, {
        details: { pid: this.pid, tempDir: this.tempDir },
      });
    }
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function parseFields(stdout: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const index = line.indexOf('=');
    if (index > 0) fields[line.slice(0, index).trim()] = line.slice(index + 1).trim();
  }
  return fields;
}
