/**
 * The one marker a killable command prints: its login shell's PID on stderr, on a
 * line of its own, before the user's command starts. That PID is the root of the
 * command's process tree (see kill-tree.ts for why the tree is what gets killed).
 *
 * The scan below is pure: bytes in, stderr to pass on and a decision out. It never
 * touches a channel or a timer, so every way the marker can arrive (split across
 * packets, after shell start-up noise, never) is tested without a guest.
 */

const PID_MARKER = 'macvm-pid:';

/**
 * Shell start-up files may print to stderr before the marker, so the scan reads
 * whole lines until the marker shows up; this bounds how long it keeps looking.
 */
export const PID_SCAN_MAX_BYTES = 16 * 1024;

/** The command line that makes the remote shell report its PID, then run `command`. */
export function withPidReport(command: string): string {
  return `printf '${PID_MARKER}%s\\n' "$$" >&2; ${command}`;
}

export type PidScan =
  /** Still looking: `pending` is stderr held back until it is known not to be the marker. */
  | { readonly kind: 'scanning'; readonly pending: Buffer; readonly scannedBytes: number }
  /** Looking no more: `pid` is undefined when none was expected or none came in time. */
  | { readonly kind: 'decided'; readonly pid: number | undefined };

export interface PidScanStep {
  readonly scan: PidScan;
  /** Stderr that is the command's own, in order; never empty buffers. */
  readonly stderr: readonly Buffer[];
  /** True on the one step at which the scan went from scanning to decided. */
  readonly decidedNow: boolean;
}

/** Where a command's stderr scan starts: commands that print no marker are decided from the outset. */
export function startPidScan(expectMarker: boolean): PidScan {
  return expectMarker ? { kind: 'scanning', pending: Buffer.alloc(0), scannedBytes: 0 } : { kind: 'decided', pid: undefined };
}

/** Feeds one stderr chunk to the scan. */
export function scanStderr(scan: PidScan, chunk: Buffer, maxBytes = PID_SCAN_MAX_BYTES): PidScanStep {
  if (scan.kind === 'decided') return { scan, stderr: nonEmpty([chunk]), decidedNow: false };
  const passOn: Buffer[] = [];
  let pending = Buffer.concat([scan.pending, chunk]);
  let scannedBytes = scan.scannedBytes;
  for (let newline = pending.indexOf(0x0a); newline >= 0; newline = pending.indexOf(0x0a)) {
    const pid = markerPid(pending.subarray(0, newline));
    const rest = pending.subarray(newline + 1);
    scannedBytes += newline + 1;
    if (pid !== undefined) {
      passOn.push(rest);
      return { scan: { kind: 'decided', pid }, stderr: nonEmpty(passOn), decidedNow: true };
    }
    passOn.push(pending.subarray(0, newline + 1));
    pending = rest;
  }
  if (scannedBytes + pending.length > maxBytes) {
    // No marker within the budget: the held-back text is ordinary stderr after all.
    passOn.push(pending);
    return { scan: { kind: 'decided', pid: undefined }, stderr: nonEmpty(passOn), decidedNow: true };
  }
  return { scan: { kind: 'scanning', pending, scannedBytes }, stderr: nonEmpty(passOn), decidedNow: false };
}

/**
 * The command ended: a partial line still held back is real stderr. Not a decision
 * anyone acts on (there is nothing left to kill), so `decidedNow` stays false.
 */
export function endPidScan(scan: PidScan): PidScanStep {
  if (scan.kind === 'decided') return { scan, stderr: [], decidedNow: false };
  return { scan: { kind: 'decided', pid: undefined }, stderr: nonEmpty([scan.pending]), decidedNow: false };
}

function markerPid(line: Buffer): number | undefined {
  const text = line.toString('latin1');
  if (!text.startsWith(PID_MARKER)) return undefined;
  const digits = text.slice(PID_MARKER.length);
  return /^\d+$/.test(digits) ? Number(digits) : undefined;
}

function nonEmpty(buffers: Buffer[]): Buffer[] {
  return buffers.filter((buffer) => buffer.length > 0);
}
