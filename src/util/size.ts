import { MacvmError } from '../errors.js';

/**
 * Sizes as users write them in configs and options: memory, disk.
 *
 * - A bare number (or numeric string like "512") is MiB, the unit VM tools think in.
 * - Binary units are powers of two: KiB = 2^10 bytes, MiB = 2^20, GiB = 2^30, TiB = 2^40.
 *   The single letters K, M, G, T mean the same (qemu's and Docker's convention: `-m 8G` is 8 GiB).
 * - Decimal units are powers of ten, as disk vendors use them: KB = 10^3 bytes, MB = 10^6,
 *   GB = 10^9, TB = 10^12. So "80GB" is 80 000 000 000 bytes ≈ 76 294 MiB, not 81 920.
 * - B is bytes. Units are case-insensitive ("8gib" works; there are no bits), a space may
 *   separate number and unit, and fractions are allowed ("1.5GiB").
 */
const UNIT_BYTES: Record<string, number> = {
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
};

const MIB = 2 ** 20;
const SIZE_PATTERN = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i;

/** The exact number of bytes a size names. `name` is the key or option, used in the error. */
export function parseSizeBytes(value: string | number, name = 'size'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) throw invalid(value, name);
    return value * MIB;
  }
  if (typeof value !== 'string') throw invalid(value, name);
  const match = SIZE_PATTERN.exec(value.trim());
  if (!match) throw invalid(value, name);
  const amount = Number(match[1]);
  const unit = match[2]!.toLowerCase();
  const factor = unit === '' ? MIB : UNIT_BYTES[unit];
  if (factor === undefined || !(amount > 0)) throw invalid(value, name);
  return amount * factor;
}

/**
 * A size in whole MiB, rounded UP so a VM never gets less than was asked for
 * ("80GB" → 76294). Throws MACVM_CONFIG_INVALID naming `name` for anything else.
 */
export function parseSize(value: string | number, name = 'size'): number {
  return Math.ceil(parseSizeBytes(value, name) / MIB - 1e-9);
}

/** A MiB count for humans: "512MiB", "8GiB", "1.5GiB". */
export function formatSize(mib: number): string {
  if (mib >= 1024 * 1024) return `${trim(mib / (1024 * 1024))}TiB`;
  if (mib >= 1024) return `${trim(mib / 1024)}GiB`;
  return `${trim(mib)}MiB`;
}

function trim(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/0+$/, '');
}

function invalid(value: unknown, name: string): MacvmError {
  const shown = typeof value === 'string' ? `"${value}"` : String(value);
  // A flag ("--disk") is a command-line argument (exit 2); anything else is a config key or option.
  return new MacvmError(name.startsWith('--') ? 'MACVM_BAD_ARGUMENT' : 'MACVM_CONFIG_INVALID', `${name} must be a positive size such as "8GiB", "512MiB", "80GB" or a number of MiB, got ${shown}.`, {
    hint: 'Binary units (KiB, MiB, GiB, TiB, or K, M, G, T) are powers of 2; decimal units (KB, MB, GB, TB) are powers of 10; a bare number is MiB.',
    details: { key: name, value },
  });
}
