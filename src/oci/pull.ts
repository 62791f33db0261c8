/**
 * `macvm image pull`: a registry image into the cache, once, verified, installed atomically.
 *
 * 1. resolve  the reference to a manifest digest (a digest already installed needs no network);
 *             refuse what macvm cannot use before downloading anything
 * 2. reuse    the installed image, or (Tart images) a complete bundle in Tart's own cache
 * 3. lock     per digest across processes; whoever waited finds the image installed
 * 4. download into a private staging dir kept across processes: files whole, disk pieces decoded
 *             at their offsets concurrently with zero runs left as holes; all-zero pieces are not
 *             fetched at all, pieces another cached image holds are copied, pieces a killed pull
 *             finished are skipped, and a half-fetched piece continues with a Range request
 * 5. verify   every blob's digest and every decoded piece's size and digest (while streaming)
 * 6. install  prepareInstall's hook, metadata, then one rename into the cache, then the tag
 *
 * A failure anywhere leaves the cache as it was; the staging dir stays for the next pull to resume.
 */
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { MacvmError, isMacvmError } from '../errors.js';
import { withFileLock } from '../util/file-lock.js';
import { throwIfAborted } from './blob-stream.js';
import { DecodePool } from './decode-pool.js';
import { WriteThrough } from './write-through.js';
import { ensureFreeSpace, type StatFs } from './disk-space.js';
import { isZeroPiece } from './disk-pieces.js';
import {
  type CachedImage,
  type ImageMetadata,
  cachedContentSources,
  type ContentSource,
  defaultTartCacheRoot,
  findInstalled,
  findTartBundle,
  imageDir,
  linkTag,
  readMetadata,
  writeMetadata,
} from './image-cache.js';
import { type ImageKind, type ImageLayout, type LayoutFile, type LayoutPiece, readImageLayout } from './image-layout.js';
import { type FetchContext, copyFile, copyPiece, downloadFile, downloadPiece } from './piece-fetch.js';
import { openStaging, removeStaging, type Staging } from './pull-staging.js';
import { type ImageReference, parseImageReference } from './reference.js';
import { type OciManifest, RegistryClient } from './registry-client.js';
import { TART_MANIFEST_FILE, tartManifestJson } from './tart-format.js';
import { ProgressMeter, type TransferProgress } from './transfer-progress.js';

export interface PullOptions {
  /** Where macvm keeps pulled images (Tart's layout). */
  cacheRoot: string;
  /** Tart's cache, looked in first for Tart images; default `$TART_HOME/cache/OCIs` or `~/.tart/cache/OCIs`. */
  tartCacheRoot?: string;
  /** Plain HTTP (loopback registries get it anyway). */
  insecure?: boolean;
  /** Where credentials come from (TART_REGISTRY_*, HOME for ~/.docker/config.json); default process.env. */
  env?: NodeJS.ProcessEnv;
  dockerConfigPath?: string;
  /** Layers fetched at once; default 4, as Tart. */
  concurrency?: number;
  onProgress?: (progress: TransferProgress) => void;
  /** Runs on the complete staging dir just before it is renamed into the cache. */
  prepareInstall?: (stagingDir: string, manifest: OciManifest) => Promise<unknown>;
  /** Refuse the image before anything is downloaded when its kind is another (a provider boots one kind). */
  checkKind?: (kind: ImageKind) => void;
  signal?: AbortSignal;
  /** How often a dropped blob transfer is resumed within this pull; default 4. */
  retries?: number;
  /** For tests: how free space is measured (default fs.statfs). */
  statfs?: StatFs;
  /**
   * Worker threads that decode and hash disk pieces; 0 does it on the main thread. Default:
   * one per core (at most `concurrency`) when the pieces to write add up to 256 MiB or more.
   */
  decodeThreads?: number;
}

export interface PullResult {
  /** The canonical reference that was pulled. */
  reference: string;
  digest: string;
  /** The image's directory: in macvm's cache, or (source 'tart-cache') in Tart's. */
  dir: string;
  kind: ImageKind;
  /** Nothing was downloaded by this call. */
  fromCache: boolean;
  source: 'registry' | 'cache' | 'tart-cache';
  /** Sum of the image's files' sizes (apparent; the disk is sparse). */
  sizeBytes: number;
}

const DEFAULT_CONCURRENCY = 4;
/** Below this much disk to decode, starting worker threads costs more than it saves. */
const THREADED_BYTES = 256 * 1024 * 1024;
const LOCK_WAIT_MS = 7 * 24 * 3600 * 1000;

export async function pullImage(reference: string, options: PullOptions): Promise<PullResult> {
  const ref = parseImageReference(reference);
  const name = ref.toString();
  const meter = new ProgressMeter(options.onProgress);
  meter.phase('resolve');
  if (ref.digest) {
    // An image pinned by digest never changes: if it is here, the registry has nothing to add.
    const installed = await findInstalled(options.cacheRoot, ref.registry, ref.repository, ref.digest);
    if (installed) return cached(name, installed, 'cache', meter);
  }
  const client = new RegistryClient(ref.registry, ref.repository, { insecure: options.insecure, env: options.env, dockerConfigPath: options.dockerConfigPath });
  const resolved = await client.getManifest(ref.digest ?? ref.tag ?? 'latest');
  if (ref.digest && resolved.digest !== ref.digest) {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `The registry answered ${name} with a manifest whose digest is ${resolved.digest}.`, { hint: 'The registry serves other content than was pinned; check the reference.' });
  }
  const digest = resolved.digest;
  const layout = readImageLayout(resolved.manifest, name, resolved.mediaType);
  options.checkKind?.(layout.kind);

  const installed = await findInstalled(options.cacheRoot, ref.registry, ref.repository, digest);
  if (installed) {
    await linkRequestedTag(options.cacheRoot, ref, digest);
    return cached(name, installed, 'cache', meter);
  }
  if (layout.kind === 'tart') {
    const tartRoot = options.tartCacheRoot ?? defaultTartCacheRoot(options.env ?? process.env);
    const bundle = await findTartBundle(tartRoot, ref.registry, ref.repository, digest, resolved.manifest);
    if (bundle) {
      meter.phase('done');
      return { reference: name, digest, dir: bundle, kind: 'tart', fromCache: true, source: 'tart-cache', sizeBytes: sizeOf(layout) };
    }
  }

  const locks = join(options.cacheRoot, '.locks');
  await mkdir(locks, { recursive: true, mode: 0o700 });
  return withFileLock(
    join(locks, `${digest.slice('sha256:'.length)}.lock`),
    {
      timeoutMs: LOCK_WAIT_MS,
      onWait: (pid) => meter.phase('wait', { detail: `process ${pid} is pulling the same image; waiting for it` }),
      onTimeout: (pid) => new MacvmError('MACVM_REGISTRY_ERROR', `Process ${pid} has been pulling ${name} for a week.`, { hint: `Stop process ${pid}, then pull again.` }),
    },
    async () => {
      // Whoever held the lock may just have installed it.
      const done = await findInstalled(options.cacheRoot, ref.registry, ref.repository, digest);
      if (done) {
        await linkRequestedTag(options.cacheRoot, ref, digest);
        return cached(name, done, 'cache', meter);
      }
      const dir = await pullLocked({ ref, name, digest, manifest: resolved.manifest, layout, client, meter, options });
      await linkRequestedTag(options.cacheRoot, ref, digest);
      meter.phase('done');
      return { reference: name, digest, dir, kind: layout.kind, fromCache: false, source: 'registry', sizeBytes: sizeOf(layout) };
    },
  );
}

function cached(reference: string, image: CachedImage, source: 'cache', meter: ProgressMeter): PullResult {
  meter.phase('done');
  return { reference, digest: image.digest, dir: image.dir, kind: image.metadata.kind, fromCache: true, source, sizeBytes: image.metadata.sizeBytes };
}

/** A tag names whatever it was resolved to now; a reference pinned by digest moves no tag. */
async function linkRequestedTag(cacheRoot: string, ref: ImageReference, digest: string): Promise<void> {
  if (ref.tag && !ref.digest) await linkTag(cacheRoot, ref.registry, ref.repository, ref.tag, digest);
}

function sizeOf(layout: ImageLayout): number {
  return layout.files.reduce((sum, file) => sum + file.layer.size, 0) + layout.disks.reduce((sum, disk) => sum + disk.size, 0);
}

interface PullJob {
  ref: ImageReference;
  name: string;
  digest: string;
  manifest: OciManifest;
  layout: ImageLayout;
  client: RegistryClient;
  meter: ProgressMeter;
  options: PullOptions;
}

type PieceAction = { piece: LayoutPiece; disk: string } & ({ kind: 'download' } | { kind: 'copy'; source: ContentSource });
type FileAction = { file: LayoutFile; source?: ContentSource };

async function pullLocked(job: PullJob): Promise<string> {
  const { layout, options, meter } = job;
  const staging = await openStaging(options.cacheRoot, job.digest);

  // What each layer needs: nothing (all zeros, or done by an earlier pull), a copy, a download.
  const sources = await cachedContentSources(options.cacheRoot, layout.kind === 'tart' ? (options.tartCacheRoot ?? defaultTartCacheRoot(options.env ?? process.env)) : undefined);
  const files: FileAction[] = layout.files
    .filter((file) => !staging.journal.has(file.index, file.layer.digest))
    .map((file) => ({ file, source: sources.get(file.layer.digest) }));
  const actions: PieceAction[] = [];
  for (const disk of layout.disks) {
    for (const piece of disk.pieces) {
      if (await isZeroPiece(piece)) continue;
      if (staging.journal.has(piece.index, piece.contentDigest)) continue;
      const source = sources.get(piece.contentDigest);
      if (source && source.size === piece.size) actions.push({ piece, disk: disk.name, kind: 'copy', source });
      else actions.push({ piece, disk: disk.name, kind: 'download' });
    }
  }
  // What crosses the network: not what an earlier pull left in .partial files.
  let downloadBytes = files.reduce((sum, action) => sum + (action.source ? 0 : action.file.layer.size), 0);
  for (const action of actions) {
    if (action.kind !== 'download') continue;
    const partial = (await stat(staging.partialPath(action.piece.index)).catch(() => undefined))?.size ?? 0;
    downloadBytes += action.piece.layer.size - (partial <= action.piece.layer.size ? partial : 0);
  }
  const writeBytes = files.reduce((sum, action) => sum + action.file.layer.size, 0) + actions.reduce((sum, action) => sum + action.piece.size, 0);
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  // The .partial files live only while their piece downloads.
  const largestBlobs = actions
    .map((action) => action.piece.layer.size)
    .sort((a, b) => b - a)
    .slice(0, concurrency)
    .reduce((sum, size) => sum + size, 0);
  await ensureFreeSpace(staging.root, writeBytes + largestBlobs, `Pulling ${job.name}`, options.statfs);

  const disks = new Map<string, FileHandle>();
  const abort = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
  const pieceBytes = actions.reduce((sum, action) => sum + action.piece.size, 0);
  const threads = options.decodeThreads ?? (pieceBytes >= THREADED_BYTES ? Math.min(availableParallelism(), concurrency) : 0);
  const decoders = new DecodePool(threads);
  const writeThrough = new WriteThrough();
  const ctx: FetchContext = { client: job.client, decoders, writeThrough, staging, reference: job.name, meter, retries: options.retries ?? 4, signal };
  try {
    for (const disk of layout.disks) disks.set(disk.name, await openDisk(join(staging.bundle, disk.name), disk.size));
    meter.phase('download', { totalBytes: downloadBytes });
    const tasks: Array<() => Promise<void>> = [
      ...files.map((action) => () => runFileAction(ctx, action)),
      ...actions.map((action) => () => runPieceAction(ctx, disks.get(action.disk)!, action, staging)),
    ];
    await runPool(tasks, concurrency, abort);
    throwIfAborted(options.signal);

    meter.phase('verify');
    // Written through before the rename: an installed image survives a power cut whole.
    await writeThrough.settle();
    for (const handle of disks.values()) await handle.sync();
  } catch (error) {
    throw diskFull(error, job.name, staging.root);
  } finally {
    // The workers stop before the disks close: no write can land after this. Journal lines
    // of pieces that did finish still go in, for the next pull to skip them.
    await decoders.close();
    await writeThrough.settle().catch(() => undefined);
    for (const handle of disks.values()) await handle.close().catch(() => undefined);
  }

  meter.phase('install');
  if (layout.kind === 'tart') await writeBundleFile(join(staging.bundle, TART_MANIFEST_FILE), tartManifestJson(job.manifest));
  await options.prepareInstall?.(staging.bundle, job.manifest);
  const metadata: ImageMetadata = {
    version: 1,
    reference: job.name,
    digest: job.digest,
    kind: layout.kind,
    pulledAt: new Date().toISOString(),
    sizeBytes: sizeOf(layout),
    files: layout.files.map((file) => ({ name: file.name, digest: file.layer.digest, size: file.layer.size })),
    pieces: layout.disks.flatMap((disk) => disk.pieces.map((piece) => ({ file: disk.name, offset: piece.offset, size: piece.size, contentDigest: piece.contentDigest }))),
  };
  await writeMetadata(staging.bundle, metadata);
  const target = imageDir(options.cacheRoot, job.ref.registry, job.ref.repository, job.digest);
  await mkdir(dirname(target), { recursive: true });
  // A directory here without metadata is no image (the lock keeps a live pull from writing here): clear it.
  if (!(await readMetadata(target))) await rm(target, { recursive: true, force: true });
  await rename(staging.bundle, target);
  await syncDir(dirname(target));
  await removeStaging(staging);
  return target;
}

async function runFileAction(ctx: FetchContext, action: FileAction): Promise<void> {
  if (action.source && (await copyFile(ctx, action.file, action.source))) return;
  if (action.source) ctx.meter.grow(action.file.layer.size);
  await downloadFile(ctx, action.file);
}

async function runPieceAction(ctx: FetchContext, disk: FileHandle, action: PieceAction, staging: Staging): Promise<void> {
  const careful = staging.resumed;
  if (action.kind === 'copy') {
    if (await copyPiece(ctx, disk, action.piece, action.source, careful)) return;
    // The cached copy changed under us: download over what the copy wrote.
    ctx.meter.grow(action.piece.layer.size);
    await downloadPiece(ctx, disk, action.piece, true);
    return;
  }
  await downloadPiece(ctx, disk, action.piece, careful);
}

/**
 * Runs tasks `limit` at a time. The first failure stops the rest: no new task starts, the
 * running ones are aborted and awaited (so nothing writes after this returns), and that first
 * failure is what is thrown.
 */
async function runPool(tasks: Array<() => Promise<void>>, limit: number, abort: AbortController): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < tasks.length) {
      const task = tasks[next++]!;
      try {
        await task();
      } catch (error) {
        if (failure === undefined) {
          failure = error;
          abort.abort();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** The disk file at its full size: holes until pieces are written. Reopened as is by a resumed pull. */
async function openDisk(path: string, size: number): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r+');
  } catch {
    handle = await open(path, 'w+', 0o600);
  }
  await handle.truncate(size);
  return handle;
}

async function writeBundleFile(path: string, data: Uint8Array): Promise<void> {
  const handle = await open(path, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r').catch(() => undefined);
  await handle?.sync().catch(() => undefined);
  await handle?.close();
}

function diskFull(error: unknown, name: string, where: string): unknown {
  if (isMacvmError(error) || (error as NodeJS.ErrnoException)?.code !== 'ENOSPC') return error;
  return new MacvmError('MACVM_DISK_SPACE', `The disk under ${where} filled up while pulling ${name}.`, {
    hint: 'Free some space and pull again: it resumes where it stopped.',
    cause: error,
  });
}
