/**
 * Getting one layer of a pull onto disk, verified: a disk piece downloaded (or copied from an
 * image already in the cache) and decoded at its offset, or a whole-blob file.
 *
 * Every byte is checked while it streams: the compressed blob against its digest, the decoded
 * piece against its uncompressed size and uncompressed-content-digest. The compressed bytes of a
 * piece are also appended to a .partial file, so a pull killed half-way through a 512 MiB piece
 * resumes: the next one decodes the .partial again (cheap, local) and asks the registry only for
 * the rest.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../errors.js';
import { streamBlob, throwIfAborted } from './blob-stream.js';
import { ZERO_CHUNK_SIZE } from './disk-pieces.js';
import type { DecodePool } from './decode-pool.js';
import type { ContentSource } from './image-cache.js';
import type { LayoutFile, LayoutPiece } from './image-layout.js';
import { corruptLayer } from './piece-job.js';
import type { Staging } from './pull-staging.js';
import type { RegistryClient } from './registry-client.js';
import type { WriteThrough } from './write-through.js';
import type { ProgressMeter } from './transfer-progress.js';

export interface FetchContext {
  client: RegistryClient;
  decoders: DecodePool;
  writeThrough: WriteThrough;
  staging: Staging;
  reference: string;
  meter: ProgressMeter;
  retries: number;
  signal?: AbortSignal;
}

export function describeLayer(layer: { index: number; layer: { digest: string } }, reference: string, what = 'layer'): string {
  return `${what} ${layer.index} (${layer.layer.digest}) of ${reference}`;
}

/**
 * Downloads a disk piece into its region, continuing from what its .partial file holds.
 * `careful` when the region may hold an earlier attempt's bytes (see SparseWriter). On a corrupt
 * blob the .partial is deleted, so the next pull fetches it afresh instead of replaying the same
 * bad bytes.
 */
export async function downloadPiece(ctx: FetchContext, disk: FileHandle, piece: LayoutPiece, careful: boolean): Promise<void> {
  const describe = describeLayer(piece, ctx.reference, 'disk layer');
  const partialPath = ctx.staging.partialPath(piece.index);
  const sink = ctx.decoders.open({ fd: disk.fd, offset: piece.offset, size: piece.size, contentDigest: piece.contentDigest, careful }, describe, {
    blob: { digest: piece.layer.digest, size: piece.layer.size, partialPath },
    onWritten: (bytes) => ctx.writeThrough.wrote(disk, bytes),
  });
  let counted = 0;
  try {
    const have = await sink.start();
    await streamBlob(ctx.client, piece.layer, {
      start: have,
      retries: ctx.retries,
      signal: ctx.signal,
      describe,
      onRestart: async () => {
        await sink.restart();
        ctx.meter.add(-counted);
        counted = 0;
      },
      onChunk: async (chunk) => {
        // A body chunk is never read again here: the sink may move it to its worker (leaving it empty).
        const length = chunk.length;
        await sink.write(chunk, true);
        counted += length;
        ctx.meter.add(length);
      },
    });
    await sink.finish();
  } catch (error) {
    await sink.abort();
    if (error instanceof MacvmError && error.code === 'MACVM_IMAGE_CORRUPT') await rm(partialPath, { force: true });
    throw error;
  }
  // The .partial goes now; should the sync fail, the piece is simply downloaded again next time.
  recordPiece(ctx, disk, piece.index, piece.contentDigest);
  await rm(partialPath, { force: true });
}

/** Journals a verified piece once its bytes are on the disk (in the background: see WriteThrough). */
function recordPiece(ctx: FetchContext, disk: FileHandle, index: number, digest: string): void {
  ctx.writeThrough.after(disk, () => ctx.staging.journal.record(index, digest));
}

/** Journals a verified file layer once it is on the disk; the file is closed next, so this waits. */
async function recordFile(ctx: FetchContext, file: FileHandle, index: number, digest: string): Promise<void> {
  await file.datasync();
  await ctx.staging.journal.record(index, digest);
}

/**
 * Copies a piece another cached image already holds (same uncompressed-content-digest) into its
 * region, verifying as it goes. False when the source turned out different (changed or gone):
 * then the caller downloads the piece, carefully, over whatever this wrote.
 */
export async function copyPiece(ctx: FetchContext, disk: FileHandle, piece: LayoutPiece, source: ContentSource, careful: boolean): Promise<boolean> {
  let from: FileHandle;
  try {
    from = await open(source.path, 'r');
  } catch {
    return false;
  }
  const sink = ctx.decoders.open({ fd: disk.fd, offset: piece.offset, size: piece.size, contentDigest: piece.contentDigest, careful }, describeLayer(piece, ctx.reference, 'disk layer'), {
    onWritten: (bytes) => ctx.writeThrough.wrote(disk, bytes),
  });
  try {
    const buffer = Buffer.allocUnsafe(ZERO_CHUNK_SIZE);
    for (let at = 0; at < piece.size; ) {
      throwIfAborted(ctx.signal);
      const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, piece.size - at), source.offset + at);
      if (bytesRead === 0) throw corruptLayer(describeLayer(piece, ctx.reference, 'disk layer'), `its cached copy in ${source.path} is short`);
      await sink.write(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
    await sink.finish();
  } catch (error) {
    await sink.abort();
    if (error instanceof MacvmError && error.code === 'MACVM_IMAGE_CORRUPT') return false;
    throw error;
  } finally {
    await from.close();
  }
  recordPiece(ctx, disk, piece.index, piece.contentDigest);
  return true;
}

/** Downloads a whole-blob layer (config, NVRAM, image.json, a kernel) into the bundle as its file. */
export async function downloadFile(ctx: FetchContext, file: LayoutFile): Promise<void> {
  const describe = describeLayer(file, ctx.reference);
  const out = await open(join(ctx.staging.bundle, file.name), 'w', 0o600);
  try {
    let hash = createHash('sha256');
    let at = 0;
    await streamBlob(ctx.client, file.layer, {
      start: 0,
      retries: ctx.retries,
      signal: ctx.signal,
      describe,
      onRestart: async () => {
        await out.truncate(0);
        hash = createHash('sha256');
        ctx.meter.add(-at);
        at = 0;
      },
      onChunk: async (chunk) => {
        hash.update(chunk);
        await writeAt(out, chunk, at);
        at += chunk.length;
        ctx.meter.add(chunk.length);
      },
    });
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== file.layer.digest) throw corruptLayer(describe, `its ${file.layer.size} bytes hash to ${digest}`);
    await recordFile(ctx, out, file.index, file.layer.digest);
  } finally {
    await out.close();
  }
}

/**
 * Copies a whole-blob layer another cached image holds (same digest), verifying it. False when
 * the source's bytes differ now (Tart rewrites config.json on `tart set`, say): then download it.
 */
export async function copyFile(ctx: FetchContext, file: LayoutFile, source: ContentSource): Promise<boolean> {
  let from: FileHandle;
  try {
    from = await open(source.path, 'r');
  } catch {
    return false;
  }
  const out = await open(join(ctx.staging.bundle, file.name), 'w', 0o600);
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(ZERO_CHUNK_SIZE, Math.max(1, file.layer.size)));
    for (let at = 0; at < file.layer.size; ) {
      throwIfAborted(ctx.signal);
      const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, file.layer.size - at), source.offset + at);
      if (bytesRead === 0) return false;
      const chunk = buffer.subarray(0, bytesRead);
      hash.update(chunk);
      await writeAt(out, chunk, at);
      at += bytesRead;
    }
    if (`sha256:${hash.digest('hex')}` !== file.layer.digest) return false;
    await recordFile(ctx, out, file.index, file.layer.digest);
    return true;
  } finally {
    await from.close();
    await out.close();
  }
}

async function writeAt(file: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let at = 0; at < data.length; ) at += (await file.write(data, at, data.length - at, position + at)).bytesWritten;
}
