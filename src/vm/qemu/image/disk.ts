import { chmod, lstat, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from './run-tool.js';

/**
 * Turns the root filesystem directory into the image's read-only qcow2 base:
 * `mkfs.ext4 -d` copies the tree into a sparse raw file (no loop mount, no root needed),
 * debugfs makes every inode root-owned (mkfs copies the builder's uid, and dropbear
 * refuses an authorized_keys owned by anyone but root), then qemu-img converts it.
 */
export const DISK_SIZE = '1G';

/** `size`: the ext4 file system's size as mkfs.ext4 takes it ('1G'); default DISK_SIZE. */
export async function makeRootDisk(options: { rootfs: string; rawPath: string; qcow2Path: string; workDir: string; size?: string }): Promise<void> {
  const { rootfs, rawPath, qcow2Path, workDir } = options;
  // Initialise inode tables and journal now: lazy init would have the guest zeroing
  // them in the background after every boot, writing into each clone's overlay.
  await runTool('make the ext4 root filesystem', 'mkfs.ext4', [
    '-q', '-F', '-L', 'macvm-root', '-m', '0',
    '-E', 'lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0',
    '-d', rootfs, rawPath, options.size ?? DISK_SIZE,
  ]);
  const script = join(workDir, 'chown-root.debugfs');
  const paths = await listTree(rootfs);
  await writeFile(script, paths.map((p) => `sif "${p}" uid 0\nsif "${p}" gid 0\n`).join(''));
  await runTool('make every file root-owned', 'debugfs', ['-w', '-f', script, rawPath]);
  await runTool('check the root filesystem', 'e2fsck', ['-f', '-n', rawPath]);
  await runTool('convert the disk to qcow2', 'qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', rawPath, qcow2Path]);
  await rm(rawPath, { force: true });
  // The base is never written: clones are overlays on it.
  await chmod(qcow2Path, 0o444);
}

/** Every path in the tree as the guest sees it ("/etc/passwd"), directories included. */
async function listTree(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, prefix), { withFileTypes: true })) {
    const path = `${prefix}/${entry.name}`;
    out.push(path);
    if (entry.isDirectory() && !(await lstat(join(root, path))).isSymbolicLink()) out.push(...(await listTree(root, path)));
  }
  return out;
}
