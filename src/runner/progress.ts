/**
 * Terminal progress for suites and their VMs: what each suite is doing right now (waiting
 * for a slot, cloning, booting, ready, running, tearing down) and for how long.
 *
 * - On a TTY: one live line per suite in flight at the bottom of the screen, redrawn in place
 *   (throttled; at most as many lines as suites in flight, each cut to the terminal width so
 *   it never wraps). A finished suite's line is printed once, above the live block, with the
 *   time it spent in each state.
 * - Not a TTY (CI logs, pipes): one plain line per state change, nothing redrawn.
 * - Silent when `quiet`, or when the CI variable is set (CI logs get the reporter's summary).
 */

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { columns?: number };
  isTTY: boolean;
  quiet?: boolean;
  /** Default process.env (only CI is read). */
  env?: NodeJS.ProcessEnv;
  /** Minimum ms between redraws on a TTY (default 100). */
  throttleMs?: number;
  /** How often timings tick on a TTY while nothing changes (default 1000 ms). */
  tickMs?: number;
}

export interface SuiteProgress {
  /** The suite entered `state` ("booting", "ready", ...); `detail` is shown after it. Repeats are ignored. */
  update(state: string, detail?: string): void;
  /** The suite finished; its line is printed for good. Later calls are ignored. */
  done(ok: boolean, summary?: string): void;
}

export interface Progress {
  suite(name: string): SuiteProgress;
  /** Prints suites still in flight as they are and stops redrawing. Idempotent. */
  close(): void;
}

interface SuiteState {
  name: string;
  started: number;
  state: string;
  detail?: string;
  since: number;
  /** Time spent in each earlier state, in order. */
  phases: Array<{ state: string; ms: number }>;
}

const ESC = '\x1b[';
const SILENT: Progress = { suite: () => ({ update() {}, done() {} }), close() {} };

export function createProgress(options: ProgressOptions): Progress {
  const env = options.env ?? process.env;
  if (options.quiet || isCI(env)) return SILENT;
  return options.isTTY ? liveProgress(options) : plainProgress(options);
}

function isCI(env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return Boolean(ci) && ci !== 'false' && ci !== '0';
}

/** One line per state change, for logs. */
function plainProgress({ stream }: ProgressOptions): Progress {
  let closed = false;
  return {
    suite(name) {
      const suite = newSuite(name);
      let finished = false;
      return {
        update(state, detail) {
          if (closed || finished || !enter(suite, state, detail)) return;
          stream.write(`  [+${seconds(Date.now() - suite.started)}] ${name}  ${state}${detail ? `  ${detail}` : ''}\n`);
        },
        done(ok, summary) {
          if (closed || finished) return;
          finished = true;
          stream.write(`${finalLine(suite, ok, summary)}\n`);
        },
      };
    },
    close() {
      closed = true;
    },
  };
}

/** The live block, redrawn in place. */
function liveProgress({ stream, throttleMs = 100, tickMs = 1000 }: ProgressOptions): Progress {
  const inFlight: SuiteState[] = [];
  let drawnLines = 0;
  let lastDraw = 0;
  let pending: NodeJS.Timeout | undefined;
  let closed = false;
  const ticker = setInterval(() => draw(), tickMs);
  ticker.unref();

  /** Erases the live block, optionally prints permanent lines, draws the block again. */
  function draw(permanent: string[] = []): void {
    if (closed) return;
    if (pending) clearTimeout(pending);
    pending = undefined;
    lastDraw = Date.now();
    const width = Math.max(20, (stream.columns ?? 80) - 1);
    const nameWidth = Math.min(40, Math.max(0, ...inFlight.map((s) => s.name.length)));
    let out = drawnLines > 0 ? `\r${ESC}${drawnLines}A${ESC}J` : '';
    for (const line of permanent) out += `${line}\n`;
    for (const suite of inFlight) out += `${cut(liveLine(suite, nameWidth), width)}\n`;
    drawnLines = inFlight.length;
    if (out) stream.write(out);
  }

  function schedule(): void {
    if (closed || pending) return;
    const wait = throttleMs - (Date.now() - lastDraw);
    if (wait <= 0) draw();
    else {
      pending = setTimeout(() => draw(), wait);
      pending.unref();
    }
  }

  return {
    suite(name) {
      const suite = newSuite(name);
      let finished = false;
      return {
        update(state, detail) {
          if (closed || finished || !enter(suite, state, detail)) return;
          if (!inFlight.includes(suite)) inFlight.push(suite);
          schedule();
        },
        done(ok, summary) {
          if (closed || finished) return;
          finished = true;
          const index = inFlight.indexOf(suite);
          if (index >= 0) inFlight.splice(index, 1);
          // A finished line is worth showing at once, unthrottled.
          draw([finalLine(suite, ok, summary)]);
        },
      };
    },
    close() {
      if (closed) return;
      draw();
      closed = true;
      clearInterval(ticker);
      if (pending) clearTimeout(pending);
      // The block stays on screen as it was last drawn; nothing will move the cursor over it again.
      drawnLines = 0;
    },
  };
}

/** Phases shorter than this are left out of a finished suite's breakdown: they would print as 0.0s. */
const BRIEF_PHASE_MS = 50;

function newSuite(name: string): SuiteState {
  const now = Date.now();
  return { name, started: now, state: '', since: now, phases: [] };
}

/** Moves the suite to `state`; false when nothing changed. */
function enter(suite: SuiteState, state: string, detail: string | undefined): boolean {
  if (suite.state === state && suite.detail === detail) return false;
  const now = Date.now();
  if (suite.state !== state) {
    if (suite.state) suite.phases.push({ state: suite.state, ms: now - suite.since });
    suite.state = state;
    suite.since = now;
  }
  suite.detail = detail;
  return true;
}

function liveLine(suite: SuiteState, nameWidth: number): string {
  const name = suite.name.length > nameWidth ? `${suite.name.slice(0, nameWidth - 1)}…` : suite.name.padEnd(nameWidth);
  return `  … ${name}  ${suite.state} ${seconds(Date.now() - suite.since)}${suite.detail ? `  ${suite.detail}` : ''}`;
}

function finalLine(suite: SuiteState, ok: boolean, summary: string | undefined): string {
  const now = Date.now();
  const phases = suite.state ? [...suite.phases, { state: suite.state, ms: now - suite.since }] : suite.phases;
  // A step that took no time ("load provider 0.0s") only lengthens the line.
  const shown = phases.filter((p) => p.ms >= BRIEF_PHASE_MS);
  const breakdown = shown.length ? ` (${shown.map((p) => `${p.state} ${seconds(p.ms)}`).join(', ')})` : '';
  return `  ${ok ? '✓' : '✗'} ${suite.name}  ${ok ? '' : 'failed after '}${seconds(now - suite.started)}${breakdown}${summary ? `  ${summary}` : ''}`;
}

function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** Cuts a line to `width` characters so it never wraps (wrapping breaks the cursor-up redraw). */
function cut(line: string, width: number): string {
  const chars = [...line];
  return chars.length <= width ? line : `${chars.slice(0, width - 1).join('')}…`;
}
