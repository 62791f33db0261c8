/**
 * `macvm image push`: an image described by a plan (which files, which is the disk) into a
 * registry, in Tart's format. The disk is cut into 512 MiB pieces, each Apple-LZ4 compressed
 * and annotated with its uncompressed size and digest; pieces with the same content (the
 * all-zero ones, mostly) share one blob, uploaded once; a blob the registry already has is not
 * uploaded again. Then the stub config and the manifest, built the way Tart builds them.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { arch } from 'node:os';
import { join } from 'node:path';
import { MacvmError } from '../errors.js';
import { PIECE_SIZE, pieceRanges } from './disk-pieces.js';
import { type ImageKind, KIND_RULES, isSafeFileName, readImageLayout } from './image-layout.js';
import { EncodePool } from './piece-encode.js';
import { parseImageReference } from './reference.js';
import { type OciDescriptor, RegistryClient } from './registry-client.js';
import {
  DISK_FORMAT_LABEL,
  OCI_MANIFEST_MEDIA_TYPE,
  TART_CONFIG_MEDIA_TYPE,
  TART_DISK_V2_MEDIA_TYPE,
  TART_FILE_NAMES,
  TART_NVRAM_MEDIA_TYPE,
  TITLE_ANNOTATION,
  layerDescriptor,
  manifestBytes,
  pieceAnnotations,
  stubConfigBytes,
} from './tart-format.js';
import { ProgressMeter, type TransferProgress } from './transfer-progress.js';

export type PushLayer =
  /** A file pushed as one blob, as is: `path` on disk or `bytes` in memory. */
  | { type: 'file'; mediaType: string; path?: string; bytes?: Uint8Array; title?: string }
  /** A disk, cut into pieces and compressed as Tart's disk.v2. */
  | { type: 'disk'; mediaType: string; path: string; title?: string };

export interface PushPlan {
  kind: ImageKind;
  /** In manifest order (a disk's pieces take its place). */
  layers: PushLayer[];
  /** Labels of the stub image config (Tart: org.cirruslabs.tart.disk.format). */
  configLabels?: Record<string, string>;
  /** Manifest annotations beside Tart's uncompressed-disk-size and upload-time. */
  annotations?: Record<string, string>;
  /** The stub config's architecture and os (Tart: from config.json); default the host's arch, linux. */
  platform?: { architecture: string; os: string };
}

export interface PushOptions {
  insecure?: boolean;
  env?: NodeJS.ProcessEnv;
  dockerConfigPath?: string;
  /** Disk pieces read, compressed and uploaded at once, each on its own core when there are enough; default 2 (each holds a piece in memory). */
  concurrency?: number;
  onProgress?: (progress: TransferProgress) => void;
  /** For tests only: pieces smaller than Tart's 512 MiB. */
  pieceSize?: number;
}

export interface PushResult {
  digest: string;
  /** The reference pushed, canonical: `host/repo:tag`. */
  reference: string;
}

export async function pushImage(plan: PushPlan, reference: string, options: PushOptions = {}): Promise<PushResult> {
  const ref = parseImageReference(reference);
  if (!ref.tag || ref.digest) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `Push to a tag, not a digest: ${reference}.`, { hint: 'Write host/repository:tag; the digest is what the push returns.' });
  }
  checkPlan(plan);
  const client = new RegistryClient(ref.registry, ref.repository, { insecure: options.insecure, env: options.env, dockerConfigPath: options.dockerConfigPath });
  const meter = new ProgressMeter(options.onProgress);
  const sizes = await Promise.all(plan.layers.map(async (layer) => (layer.type === 'file' && layer.bytes ? layer.bytes.length : (await stat(layer.path!)).size)));
  meter.phase('upload', { totalBytes: sizes.reduce((sum, size) => sum + size, 0) });

  const layers: OciDescriptor[] = [];
  let diskSize: number | undefined;
  for (const [index, layer] of plan.layers.entries()) {
    const title: Record<string, string> = layer.title !== undefined ? { [TITLE_ANNOTATION]: layer.title } : {};
    if (layer.type === 'disk') {
      layers.push(...(await pushDisk(client, layer, title, options, meter)));
      diskSize = (diskSize ?? 0) + sizes[index]!;
    } else {
      const blob = await pushFile(client, layer);
      layers.push(layerDescriptor(layer.mediaType, blob.digest, blob.size, title));
      meter.add(blob.size);
    }
  }

  const config = stubConfigBytes({ ...(plan.platform ?? { architecture: hostArchitecture(), os: 'linux' }), labels: plan.configLabels ?? {} });
  const configBlob = await pushBytes(client, config);
  const manifest = manifestBytes({ config: configBlob, layers, uncompressedDiskSize: diskSize, uploadTime: new Date(), annotations: plan.annotations });
  // What we push must be what we pull: the same rules judge it before the registry sees it.
  readImageLayout(JSON.parse(manifest.toString('utf8')), reference, OCI_MANIFEST_MEDIA_TYPE);
  const digest = await client.putManifest(ref.tag, manifest, OCI_MANIFEST_MEDIA_TYPE);
  meter.phase('done');
  return { digest, reference: ref.toString() };
}

/** The plan must make an image the pull accepts: refused here, before gigabytes are uploaded. */
function checkPlan(plan: PushPlan): void {
  const rules = KIND_RULES[plan.kind];
  const bad = (why: string): never => {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `The push plan for a ${plan.kind} image is not valid: ${why}.`);
  };
  if (!rules) bad(`unknown kind ${String(plan.kind)}`);
  for (const [index, layer] of plan.layers.entries()) {
    if (!(layer.mediaType in rules.defaultNames)) bad(`layer ${index} has media type ${layer.mediaType}`);
    if ((layer.type === 'disk') !== (layer.mediaType === rules.diskMediaType)) bad(`layer ${index} (${layer.mediaType}) must be of type ${layer.type === 'disk' ? 'file' : 'disk'}`);
    if (layer.title !== undefined && !isSafeFileName(layer.title)) bad(`layer ${index} is titled ${JSON.stringify(layer.title)}, not a plain file name`);
    if (layer.title === undefined && rules.defaultNames[layer.mediaType] === undefined) bad(`layer ${index} (${layer.mediaType}) needs a title to name its file`);
    if (layer.type === 'file' && (layer.path === undefined) === (layer.bytes === undefined)) bad(`file layer ${index} needs exactly one of path and bytes`);
  }
  if (!plan.layers.some((layer) => layer.type === 'disk')) bad('it has no disk');
}

interface Blob {
  digest: string;
  size: number;
}

async function pushBytes(client: RegistryClient, data: Buffer, known?: string): Promise<Blob> {
  const digest = known ?? `sha256:${createHash('sha256').update(data).digest('hex')}`;
  if (!(await client.blobExists(digest))) await client.pushBlob(digest, data.length, data);
  return { digest, size: data.length };
}

async function pushFile(client: RegistryClient, layer: Extract<PushLayer, { type: 'file' }>): Promise<Blob> {
  if (layer.bytes) return pushBytes(client, Buffer.from(layer.bytes.buffer, layer.bytes.byteOffset, layer.bytes.byteLength));
  const path = layer.path!;
  // Hashed first, streamed second: the digest goes in the upload URL, and the file is not held in memory.
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (!(await client.blobExists(digest))) await client.pushBlob(digest, size, () => createReadStream(path, { highWaterMark: 1024 * 1024 }));
  return { digest, size };
}

async function pushDisk(client: RegistryClient, layer: Extract<PushLayer, { type: 'disk' }>, title: Record<string, string>, options: PushOptions, meter: ProgressMeter): Promise<OciDescriptor[]> {
  const disk = await open(layer.path, 'r');
  const size = (await disk.stat()).size;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const encoder = new EncodePool(EncodePool.threadsFor(size, concurrency));
  try {
    const ranges = pieceRanges(size, options.pieceSize ?? PIECE_SIZE);
    const byContent = new Map<string, Promise<Blob>>();
    const descriptors: OciDescriptor[] = new Array(ranges.length);
    let next = 0;
    const worker = async () => {
      while (next < ranges.length) {
        const index = next++;
        const range = ranges[index]!;
        const piece = await encoder.encode(disk.fd, range.offset, range.size);
        // Identical pieces (above all the all-zero ones) are uploaded once.
        let blob = byContent.get(piece.contentDigest);
        if (!blob) {
          blob = pushBytes(client, Buffer.from(piece.compressed.buffer, piece.compressed.byteOffset, piece.compressed.byteLength), piece.digest);
          byContent.set(piece.contentDigest, blob);
        }
        const { digest, size: blobSize } = await blob;
        descriptors[index] = layerDescriptor(layer.mediaType, digest, blobSize, { ...pieceAnnotations(range.size, piece.contentDigest), ...title });
        meter.add(range.size);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, ranges.length)) }, worker));
    return descriptors;
  } finally {
    await encoder.close();
    await disk.close();
  }
}

function hostArchitecture(): string {
  return arch() === 'arm64' ? 'arm64' : 'amd64';
}

/**
 * The plan for pushing a Tart bundle (config.json, disk.img, nvram.bin) as `tart push` would:
 * those three layers in Tart's order, the disk format label from config.json, and the stub
 * config's architecture and os from it too.
 */
export async function tartPushPlan(bundleDir: string): Promise<PushPlan> {
  const path = (name: string) => join(bundleDir, name);
  for (const name of Object.values(TART_FILE_NAMES)) {
    if (!(await stat(path(name)).catch(() => undefined))?.isFile()) {
      throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `${bundleDir} is not a Tart VM bundle: it has no ${name}.`, { hint: 'A Tart bundle holds config.json, disk.img and nvram.bin.' });
    }
  }
  let config: { arch?: unknown; os?: unknown; diskFormat?: unknown };
  try {
    config = JSON.parse(await readFile(path('config.json'), 'utf8')) as typeof config;
  } catch (error) {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `${path('config.json')} is not valid JSON.`, { cause: error });
  }
  const text = (value: unknown, fallback: string) => (typeof value === 'string' && value !== '' ? value : fallback);
  return {
    kind: 'tart',
    layers: [
      { type: 'file', mediaType: TART_CONFIG_MEDIA_TYPE, path: path('config.json') },
      { type: 'disk', mediaType: TART_DISK_V2_MEDIA_TYPE, path: path('disk.img') },
      { type: 'file', mediaType: TART_NVRAM_MEDIA_TYPE, path: path('nvram.bin') },
    ],
    // VMDirectory+OCI.swift: labels[diskFormatLabel] = config.diskFormat.rawValue ("raw" when absent).
    configLabels: { [DISK_FORMAT_LABEL]: text(config.diskFormat, 'raw') },
    platform: { architecture: text(config.arch, 'arm64'), os: text(config.os, 'darwin') },
  };
}
