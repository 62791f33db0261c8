/**
 * Free space, checked before a pull writes anything: running out half-way through a 50 GB disk
 * wastes the download and can fill the user's disk for everything else too.
 */
import { statfs } from 'node:fs/promises';
import { MacvmError } from '../errors.js';

export type StatFs = (path: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }>;

/** Room for what the sizes cannot foresee: directory entries, metadata, a filesystem's reserve rounding. */
export const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

export async function freeBytes(path: string, stat: StatFs = statfs): Promise<number> {
  const info = await stat(path);
  return Number(info.bavail) * Number(info.bsize);
}

/** Throws MACVM_DISK_SPACE when `path`'s filesystem has less than `needed` + the margin free. */
export async function ensureFreeSpace(path: string, needed: number, what: string, stat: StatFs = statfs): Promise<void> {
  const free = await freeBytes(path, stat);
  const want = needed + SPACE_MARGIN_BYTES;
  if (want <= free) return;
  throw new MacvmError('MACVM_DISK_SPACE', `${what} needs up to ${formatBytes(want)} free under ${path}, and ${formatBytes(free)} are free.`, {
    hint: 'Free some space there (`macvm image ls` lists pulled images), or point MACVM_HOME at a larger disk.',
    details: { path, neededBytes: want, freeBytes: free },
  });
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
