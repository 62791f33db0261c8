import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import type { SFTPWrapper, Stats } from 'ssh2';
import { MacvmError, isMacvmError, messageOf } from '../errors.js';
import { quoteShellWord } from './shell-quote.js';
import { TreeSteps } from './tree-steps.js';

/**
 * Files and directory trees over SFTP. Semantics are deliberately simpler than
 * `cp -r`: the destination path always *becomes* the source (a directory's
 * contents land in it, merged with what is there), never a child of it, so a
 * call does the same thing whether or not the destination exists.
 * Permission bits are carried over for files and directories; symlinks inside a
 * tree are recreated as symlinks; the top-level path is followed if it is a link.
 */
export interface TransferChannel {
  sftp(): Promise<SFTPWrapper>;
  /** Runs a shell command in the guest, rejecting on failure (used for symlinks, see below). */
  run(command: string): Promise<void>;
}

const PERMISSION_BITS = 0o7777;
/**
 * Parallel 32 KiB writes in flight per upload. With ssh2's default of 64 (2 MiB, the
 * size of its channel window) uploads of 32 MiB to OpenSSH 9.2 here sometimes stalled
 * for seconds (3.6–6.3 s); 16 took 0.3–1.2 s every time and is never slower.
 * bench/guest-session.ts prints the current figure.
 */
const UPLOAD_CONCURRENCY = 16;
/** Files of a tree in flight at once (see TreeSteps); with 16 writes each, 8 stay well inside one channel's window. */
const TREE_FILES_AT_ONCE = 8;

async function walkTree(walk: (steps: TreeSteps) => Promise<void>): Promise<void> {
  const steps = new TreeSteps(TREE_FILES_AT_ONCE);
  await walk(steps);
  steps.check();
}

export async function uploadPath(channel: TransferChannel, localPath: string, remotePath: string): Promise<void> {
  await transfer('upload', localPath, remotePath, async () => {
    const sftp = await channel.sftp();
    const info = await stat(localPath).catch((error: unknown) => {
      throw itemError('upload', localPath, remotePath, `cannot read ${localPath}: ${messageOf(error)}`, error);
    });
    if (info.isDirectory()) await walkTree((steps) => uploadDirectory(channel, sftp, localPath, remotePath, info.mode, steps));
    else if (info.isFile()) await uploadFile(sftp, localPath, remotePath, info.mode);
    else throw itemError('upload', localPath, remotePath, `${localPath} is neither a file nor a directory`);
  });
}

export async function downloadPath(channel: TransferChannel, remotePath: string, localPath: string): Promise<void> {
  await transfer('download', remotePath, localPath, async () => {
    const sftp = await channel.sftp();
    const info = await call<Stats>((done) => sftp.stat(remotePath, done)).catch((error: unknown) => {
      throw itemError('download', remotePath, localPath, `cannot stat ${remotePath} in the guest: ${messageOf(error)}`, error);
    });
    await mkdir(dirname(localPath), { recursive: true });
    if (info.isDirectory()) await walkTree((steps) => downloadDirectory(sftp, remotePath, localPath, info.mode, steps));
    else if (info.isFile()) await downloadFile(sftp, remotePath, localPath, info.mode);
    else throw itemError('download', remotePath, localPath, `${remotePath} is neither a file nor a directory in the guest`);
  });
}

export async function writeRemoteFile(channel: TransferChannel, remotePath: string, data: string | Buffer, mode?: number): Promise<void> {
  await transfer('write', '(data)', remotePath, async () => {
    const sftp = await channel.sftp();
    await attempt('write', '(data)', remotePath, async () => {
      await call((done) => sftp.writeFile(remotePath, data, mode === undefined ? {} : { mode }, done));
      // The server's umask applies at open; chmod makes the mode exactly what was asked.
      if (mode !== undefined) await call((done) => sftp.chmod(remotePath, mode & PERMISSION_BITS, done));
    });
  });
}

export async function readRemoteFile(channel: TransferChannel, remotePath: string): Promise<Buffer> {
  let content: Buffer = Buffer.alloc(0);
  await transfer('read', remotePath, '(memory)', async () => {
    const sftp = await channel.sftp();
    content = await attempt('read', remotePath, '(memory)', () => call<Buffer>((done) => sftp.readFile(remotePath, done)));
  });
  return content;
}

async function uploadFile(sftp: SFTPWrapper, localPath: string, remotePath: string, mode: number): Promise<void> {
  await attempt('upload', localPath, remotePath, async () => {
    await call((done) => sftp.fastPut(localPath, remotePath, { mode: mode & PERMISSION_BITS, concurrency: UPLOAD_CONCURRENCY }, done));
    await call((done) => sftp.chmod(remotePath, mode & PERMISSION_BITS, done));
  });
}

async function uploadDirectory(channel: TransferChannel, sftp: SFTPWrapper, localDir: string, remoteDir: string, mode: number, steps: TreeSteps): Promise<void> {
  await steps.direct(() => attempt('upload', localDir, remoteDir, () => ensureRemoteDirectory(sftp, remoteDir)));
  let entries: Dirent[] = [];
  await steps.direct(async () => {
    entries = await attempt('upload', localDir, remoteDir, () => readdir(localDir, { withFileTypes: true }));
  });
  const children: Promise<void>[] = [];
  for (const entry of entries) {
    if (steps.failed) break;
    const from = join(localDir, entry.name);
    const to = posix.join(remoteDir, entry.name);
    if (entry.isDirectory()) children.push(steps.direct(async () => uploadDirectory(channel, sftp, from, to, (await lstat(from)).mode, steps)));
    else if (entry.isFile()) children.push(steps.step(async () => uploadFile(sftp, from, to, (await lstat(from)).mode)));
    else if (entry.isSymbolicLink()) {
      // SFTP's SYMLINK request has its arguments swapped in OpenSSH's sftp-server, and
      // clients guess which server they talk to from the SSH banner, which is wrong
      // behind dropbear (it uses OpenSSH's sftp-server). `ln -s` has no such ambiguity.
      children.push(
        steps.step(async () => {
          const target = await readlink(from);
          await attempt('upload', from, to, () => channel.run(`rm -f ${quoteShellWord(to)} && ln -s ${quoteShellWord(target)} ${quoteShellWord(to)}`));
        }),
      );
    } else steps.fail(itemError('upload', from, to, `${from} is a special file (socket, FIFO or device), which cannot be uploaded`));
  }
  await Promise.all(children);
  // Last, so a read-only directory mode does not stop its own contents being written.
  await steps.direct(() => attempt('upload', localDir, remoteDir, () => call((done) => sftp.chmod(remoteDir, mode & PERMISSION_BITS, done))));
}

async function ensureRemoteDirectory(sftp: SFTPWrapper, remoteDir: string): Promise<void> {
  const existing = await call<Stats>((done) => sftp.stat(remoteDir, done)).catch(() => undefined);
  if (existing?.isDirectory()) return;
  if (existing) throw new Error(`${remoteDir} exists in the guest and is not a directory`);
  await call((done) => sftp.mkdir(remoteDir, done));
}

async function downloadFile(sftp: SFTPWrapper, remotePath: string, localPath: string, mode: number): Promise<void> {
  // Into a temporary sibling first, so an interrupted download never leaves a
  // truncated file under the real name.
  const partial = join(dirname(localPath), `.${basename(localPath)}.${randomBytes(4).toString('hex')}.partial`);
  try {
    await attempt('download', remotePath, localPath, async () => {
      await call((done) => sftp.fastGet(remotePath, partial, done));
      await chmod(partial, mode & PERMISSION_BITS);
      await rename(partial, localPath);
    });
  } finally {
    await rm(partial, { force: true });
  }
}

async function downloadDirectory(sftp: SFTPWrapper, remoteDir: string, localDir: string, mode: number, steps: TreeSteps): Promise<void> {
  await steps.direct(() =>
    attempt('download', remoteDir, localDir, async () => {
      await mkdir(localDir, { recursive: true });
      await chmod(localDir, (mode & PERMISSION_BITS) | 0o700);
    }),
  );
  let entries: Array<{ filename: string; attrs: Stats }> = [];
  await steps.direct(async () => {
    entries = await attempt('download', remoteDir, localDir, () => call<Array<{ filename: string; attrs: Stats }>>((done) => sftp.readdir(remoteDir, done)));
  });
  const children: Promise<void>[] = [];
  for (const entry of entries) {
    if (steps.failed) break;
    if (entry.filename === '.' || entry.filename === '..') continue;
    const from = posix.join(remoteDir, entry.filename);
    const to = join(localDir, entry.filename);
    if (entry.attrs.isDirectory()) children.push(steps.direct(() => downloadDirectory(sftp, from, to, entry.attrs.mode, steps)));
    else if (entry.attrs.isFile()) children.push(steps.step(() => downloadFile(sftp, from, to, entry.attrs.mode)));
    else if (entry.attrs.isSymbolicLink()) {
      children.push(
        steps.step(() =>
          attempt('download', from, to, async () => {
            const target = await call<string>((done) => sftp.readlink(from, done));
            await rm(to, { force: true });
            await symlink(target, to);
          }),
        ),
      );
    } else steps.fail(itemError('download', from, to, `${from} is a special file (socket, FIFO or device) in the guest, which cannot be downloaded`));
  }
  await Promise.all(children);
  // Exact mode last, so a read-only directory could still be filled above.
  await steps.direct(() => attempt('download', remoteDir, localDir, () => chmod(localDir, mode & PERMISSION_BITS)));
}

type Verb = 'upload' | 'download' | 'write' | 'read';

/** Wraps one whole operation: any failure not already coded names both ends. */
async function transfer(verb: Verb, from: string, to: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (isMacvmError(error)) throw error;
    throw itemError(verb, from, to, messageOf(error), error);
  }
}

/** Wraps one item, so the error names the exact file that failed inside a tree. */
async function attempt<T>(verb: Verb, from: string, to: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isMacvmError(error)) throw error;
    throw itemError(verb, from, to, messageOf(error), error);
  }
}

function itemError(verb: Verb, from: string, to: string, reason: string, cause?: unknown): MacvmError {
  const guestSide = verb === 'upload' || verb === 'write' ? to : from;
  const hostSide = verb === 'upload' ? from : verb === 'download' ? to : undefined;
  const what = { upload: `Uploading ${from} to guest:${to}`, download: `Downloading guest:${from} to ${to}`, write: `Writing guest:${to}`, read: `Reading guest:${from}` }[verb];
  const side = failedSide(cause);
  const hint =
    side === 'host' && hostSide
      ? `Check that ${hostSide} ${verb === 'upload' ? 'exists on this host and may be read' : 'can be written on this host (its directory exists and is writable)'}.`
      : `Check that guest:${guestSide} exists (or its parent directory does) and that the SSH user may read and write there.`;
  return new MacvmError('MACVM_TRANSFER_FAILED', `${what} failed: ${reason}.`, {
    hint,
    details: { operation: verb, from, to, side, sftpCode: (cause as { code?: unknown } | undefined)?.code },
    cause,
  });
}

/**
 * Which end refused: 'host' for this machine's file system (node's fs errors carry a syscall),
 * 'guest' for an SFTP status the guest answered with (a number), else the connection itself.
 */
function failedSide(cause: unknown): 'host' | 'guest' | 'connection' {
  const { syscall, code } = (cause ?? {}) as { syscall?: unknown; code?: unknown };
  if (typeof syscall === 'string') return 'host';
  return typeof code === 'number' ? 'guest' : 'connection';
}

/** Promise form of ssh2's node-style callbacks. */
function call<T = void>(start: (done: (error: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value as T)));
  });
}
