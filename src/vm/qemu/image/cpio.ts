/**
 * The initramfs archive format the Linux kernel unpacks: cpio "newc" (SVR4 without
 * checksums). Written here rather than with the cpio tool so the initrd's contents and
 * order are exactly what the build lists, with root ownership whoever builds it.
 */
export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  /** A device node, e.g. dev/console (5,1), which the kernel opens for init's stdio before anything mounts /dev. */
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export function cpioNewc(entries: CpioEntry[], mtimeSeconds = 0): Buffer {
  const chunks: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const path = entry.path.replace(/^\/+/, '');
    if (!path) throw new Error('cpio entry without a path');
    if (entry.type === 'dir') chunks.push(...record(path, S_IFDIR | (entry.mode ?? 0o755), Buffer.alloc(0), ino++, 2, mtimeSeconds));
    else if (entry.type === 'file') chunks.push(...record(path, S_IFREG | (entry.mode ?? 0o644), Buffer.from(entry.data), ino++, 1, mtimeSeconds));
    else if (entry.type === 'symlink') chunks.push(...record(path, S_IFLNK | 0o777, Buffer.from(entry.target), ino++, 1, mtimeSeconds));
    else chunks.push(...record(path, S_IFCHR | (entry.mode ?? 0o600), Buffer.alloc(0), ino++, 1, mtimeSeconds, [entry.major, entry.minor]));
  }
  chunks.push(...record('TRAILER!!!', 0, Buffer.alloc(0), 0, 1, 0));
  return Buffer.concat(chunks);
}

function record(name: string, mode: number, data: Buffer, ino: number, nlink: number, mtime: number, rdev: [number, number] = [0, 0]): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  const fields = [ino, mode, 0, 0, nlink, mtime, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`, 'latin1');
  // Header + name are padded to a multiple of 4, and so is the data.
  return [header, nameBytes, Buffer.alloc(pad4(header.length + nameBytes.length)), data, Buffer.alloc(pad4(data.length))];
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}
