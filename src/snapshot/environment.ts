/**
 * The environment a screenshot was taken in. Baselines record it in a sidecar. The pixels
 * still decide a comparison; the sidecar explains it: a match against a baseline from another
 * OS build or GPU says so, and a mismatch names the difference as the likely cause.
 */
export interface SnapshotEnvironment {
  /** 'vz', 'tart', 'qemu', 'ssh', ... */
  provider?: string;
  /** 'macOS 14.4', 'linux' */
  guestOs?: string;
  /** '23E214', a kernel release */
  guestBuild?: string;
  /** 'Apple Paravirtual device', 'qemu VGA (std)' */
  gpu?: string;
  /** Software renderer name when there is one ('llvmpipe'). */
  renderer?: string;
  display?: { width: number; height: number; scale: number };
}

/** What a `<name>.png.json` sidecar holds. */
export interface SnapshotSidecar extends SnapshotEnvironment {
  takenAt: string;
}

let current: SnapshotEnvironment | undefined;

/**
 * Sets the environment screenshots of this worker are taken in (withMacVM calls it once the
 * VM is ready). `undefined` clears it.
 */
export function setSnapshotEnvironment(environment: SnapshotEnvironment | undefined): void {
  current = environment ? { ...environment } : undefined;
}

export function currentSnapshotEnvironment(): SnapshotEnvironment {
  return { ...current };
}

type Field = 'provider' | 'guestOs' | 'guestBuild' | 'gpu' | 'renderer' | 'display';
const FIELDS: readonly Field[] = ['provider', 'guestOs', 'guestBuild', 'gpu', 'renderer', 'display'];

/**
 * The fields that differ. A field counts only when both sides recorded it, so a baseline
 * from before a field existed (or a run that does not know its GPU) is not a mismatch.
 */
export function environmentDifferences(baseline: SnapshotEnvironment, run: SnapshotEnvironment): Field[] {
  return FIELDS.filter((field) => {
    const a = baseline[field];
    const b = run[field];
    if (a === undefined || b === undefined) return false;
    if (field === 'display') {
      const da = a as NonNullable<SnapshotEnvironment['display']>;
      const db = b as NonNullable<SnapshotEnvironment['display']>;
      return da.width !== db.width || da.height !== db.height || da.scale !== db.scale;
    }
    return a !== b;
  });
}

/** "macOS 14.4 (23E214) / Apple Paravirtual device / vz / 1920×1080@2x" */
export function describeEnvironment(environment: SnapshotEnvironment): string {
  const os = [environment.guestOs, environment.guestBuild ? `(${environment.guestBuild})` : undefined].filter(Boolean).join(' ');
  const gpu = environment.renderer && environment.renderer !== environment.gpu ? `${environment.gpu ?? '?'} [${environment.renderer}]` : environment.gpu;
  const display = environment.display ? `${environment.display.width}×${environment.display.height}@${environment.display.scale}x` : undefined;
  return [os || undefined, gpu, environment.provider, display].filter(Boolean).join(' / ') || 'an unknown environment';
}

/** A short, file-name-safe key for `{env}` in path templates: "qemu-linux-6.1.0-qemu-vga-std". */
export function environmentKey(environment: SnapshotEnvironment): string {
  const parts = [environment.provider, environment.guestOs, environment.guestBuild, environment.gpu, environment.renderer];
  if (environment.display) parts.push(`${environment.display.width}x${environment.display.height}@${environment.display.scale}x`);
  const key = parts
    .filter((part): part is string => Boolean(part))
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9.@]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return key || 'default';
}

/** Reads a sidecar leniently: unknown or missing fields are dropped, not fatal. */
export function parseSidecar(text: string): SnapshotSidecar | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  const sidecar: SnapshotSidecar = { takenAt: typeof record.takenAt === 'string' ? record.takenAt : '' };
  for (const field of ['provider', 'guestOs', 'guestBuild', 'gpu', 'renderer'] as const) {
    if (typeof record[field] === 'string') sidecar[field] = record[field];
  }
  const display = record.display as Record<string, unknown> | undefined;
  if (display && typeof display.width === 'number' && typeof display.height === 'number') {
    sidecar.display = { width: display.width, height: display.height, scale: typeof display.scale === 'number' ? display.scale : 1 };
  }
  return sidecar;
}
