/**
 * The Tart-format pull and push engine against a REAL registry (Debian's docker-registry behind
 * the test harness's fault proxy, with Bearer-token auth): round trips byte for byte and still
 * sparse, corruption and interruption, two processes at once, a moved tag, refusals, and Tart's
 * own cache. Small disk pieces where the point is logic; the Tart contract test uses Tart's real
 * 512 MiB pieces.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, open, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siblingEntry } from '../../src/util/sibling-entry.js';
import { findCached, imageDir, listCachedImages } from '../../src/oci/image-cache.js';
import { pullImage, type PullOptions } from '../../src/oci/pull.js';
import { pushImage, tartPushPlan } from '../../src/oci/push.js';
import { RegistryClient, type OciManifest } from '../../src/oci/registry-client.js';
import { tartManifestJson } from '../../src/oci/tart-format.js';
import type { TransferProgress } from '../../src/oci/transfer-progress.js';
import { macvmErrorOf } from '../support/macvm-error.js';
import { startRegistry, type TestRegistry } from '../support/registry-server.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const PIECE = 1 * MiB;

let registry: TestRegistry;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  registry = await startRegistry({ auth: 'token' });
  scratch = await mkdtemp(join(tmpdir(), 'macvm-oci-pull-'));
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A fresh directory under the scratch dir. */
async function freshDir(name: string): Promise<string> {
  const dir = join(scratch, `${name}-${++counter}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Data that compresses somewhat, as a disk's does: text-like runs with random bytes between. */
function diskLikeData(size: number): Buffer {
  const data = Buffer.alloc(size);
  for (let at = 0; at < size; at += 8192) {
    randomBytes(2048).copy(data, at);
    data.write(`block ${at} `.repeat(200).slice(0, Math.min(4096, size - at - 2048)), Math.min(at + 2048, size), 'latin1');
  }
  return data;
}

/**
 * A Tart bundle whose disk is sparse: `size` bytes, data only at `regions` (offset → bytes).
 * Returns the bundle dir.
 */
async function makeBundle(name: string, size: number, regions: Array<[number, Buffer]>): Promise<string> {
  const dir = await freshDir(name);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ version: 1, os: 'darwin', arch: 'arm64', cpuCount: 4, memorySize: 8 * 1024 * MiB, diskFormat: 'raw', macAddress: '7a:65:e4:1d:2f:01' }));
  await writeFile(join(dir, 'nvram.bin'), randomBytes(128 * 1024));
  const disk = await open(join(dir, 'disk.img'), 'w');
  try {
    await disk.truncate(size);
    for (const [offset, bytes] of regions) await disk.write(bytes, 0, bytes.length, offset);
  } finally {
    await disk.close();
  }
  return dir;
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const hash = async (path: string) => {
    const hasher = createHash('sha256');
    for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hasher.update(chunk as Buffer);
    return hasher.digest('hex');
  };
  return (await hash(a)) === (await hash(b));
}

async function allocatedBytes(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

/** Blob GETs the registry answered with bytes (not a 401 before a token), since request `since`. */
function blobGets(since: number): Array<{ digest: string; range?: string }> {
  return registry
    .stats()
    .requests.slice(since)
    .filter((r) => r.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(r.path) && (r.status === 200 || r.status === 206))
    .map((r) => ({ digest: r.path.slice(r.path.lastIndexOf('/') + 1), ...(r.range ? { range: r.range } : {}) }));
}

const requestCount = () => registry.stats().requests.length;

function pullOptions(cacheRoot: string, extra: Partial<PullOptions> = {}): PullOptions {
  // An empty Tart cache, so a real ~/.tart on the machine cannot answer for the registry.
  return { cacheRoot, tartCacheRoot: join(cacheRoot, 'no-tart'), env: registry.env, ...extra };
}

async function manifestOf(reference: string): Promise<OciManifest> {
  const [host, ...rest] = reference.split('/');
  const path = rest.join('/');
  const [repository, tag] = path.split(':');
  return (await new RegistryClient(host!, repository!, { env: registry.env }).getManifest(tag!)).manifest;
}

describe('push → pull', () => {
  it('round-trips a Tart bundle byte for byte, keeps the disk sparse, fetches no all-zero piece, and answers again from the cache', { timeout: 120_000 }, async () => {
    // 7 pieces and a short one: data in 0, 2, 4 and the last; 1, 3, 5, 6 all zeros.
    const size = 7 * PIECE + 300 * 1024;
    const bundle = await makeBundle('round-trip', size, [
      [0, diskLikeData(256 * 1024)],
      [2 * PIECE + 128 * 1024, diskLikeData(192 * 1024)],
      [4 * PIECE, randomBytes(64 * 1024)],
      [7 * PIECE + 64 * 1024, diskLikeData(128 * 1024)],
    ]);
    const reference = `${registry.host}/team/round-trip:v1`;
    const pushed = await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
    expect(pushed.reference).toBe(reference);

    const manifest = await manifestOf(reference);
    const disk = manifest.layers.filter((layer) => layer.mediaType === 'application/vnd.cirruslabs.tart.disk.v2');
    expect(disk).toHaveLength(8);
    const zeroDigests = new Set([1, 3, 5, 6].map((i) => disk[i]!.digest));
    expect(zeroDigests.size).toBe(1);
    expect(manifest.annotations?.['org.cirruslabs.tart.uncompressed-disk-size']).toBe(String(size));

    const cacheRoot = await freshDir('cache');
    const since = requestCount();
    const progress: string[] = [];
    const pulled = await pullImage(reference, pullOptions(cacheRoot, { onProgress: (p) => progress.push(p.phase) }));
    expect(pulled).toMatchObject({ reference, digest: pushed.digest, kind: 'tart', fromCache: false, source: 'registry', sizeBytes: size + (await stat(join(bundle, 'config.json'))).size + 128 * 1024 });
    expect(pulled.dir).toBe(imageDir(cacheRoot, registry.host, 'team/round-trip', pushed.digest));
    for (const name of ['config.json', 'nvram.bin', 'disk.img']) expect(await sameFile(join(pulled.dir, name), join(bundle, name)), name).toBe(true);
    // Tart keeps the manifest beside the files, as it re-encodes it.
    expect((await readFile(join(pulled.dir, 'manifest.json'))).equals(tartManifestJson(manifest))).toBe(true);
    // Sparse: no more blocks than the source's data (rounded to the 64 KiB hole granularity).
    const pulledBlocks = await allocatedBytes(join(pulled.dir, 'disk.img'));
    expect(pulledBlocks).toBeLessThanOrEqual((await allocatedBytes(join(bundle, 'disk.img'))) + 4 * 64 * 1024);
    expect(pulledBlocks).toBeLessThan(size / 4);
    // The all-zero pieces' shared blob was never fetched; each other blob once.
    const gets = blobGets(since).map((get) => get.digest);
    expect(gets.filter((digest) => zeroDigests.has(digest))).toEqual([]);
    expect(new Set(gets).size).toBe(gets.length);
    expect(progress).toEqual(expect.arrayContaining(['resolve', 'download', 'verify', 'install', 'done']));
    // The tag is a symlink to the digest directory, as in Tart's cache.
    expect(await readlink(join(cacheRoot, registry.host.replace(':', '%3A'), 'team', 'round-trip', 'v1'))).toBe(pushed.digest);
    expect((await readdir(join(cacheRoot, '.staging'))).length).toBe(0);

    const again = requestCount();
    const second = await pullImage(reference, pullOptions(cacheRoot));
    expect(second).toMatchObject({ digest: pushed.digest, dir: pulled.dir, fromCache: true, source: 'cache' });
    expect(blobGets(again)).toEqual([]);
    expect((await findCached(cacheRoot, reference))?.dir).toBe(pulled.dir);
    const listed = await listCachedImages(cacheRoot);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ digest: pushed.digest, kind: 'tart', references: [reference, `${registry.host}/team/round-trip@${pushed.digest}`] });
    expect(listed[0]!.diskUsageBytes).toBeLessThan(listed[0]!.sizeBytes / 4);
  });

  it('round-trips a disk in real 512 MiB pieces, compressed and decoded in worker threads, and keeps it sparse', { timeout: 180_000 }, async () => {
    // Pieces: 0 data at both ends, 1 and 2 all zeros, 3 (short) data.
    const size = 3 * 512 * MiB + 3 * MiB;
    const bundle = await makeBundle('real-pieces', size, [
      [4096, diskLikeData(2 * MiB)],
      [512 * MiB - 64 * 1024, randomBytes(64 * 1024)],
      [3 * 512 * MiB + MiB, diskLikeData(MiB)],
    ]);
    const reference = `${registry.host}/team/real-pieces:v1`;
    const pushed = await pushImage(await tartPushPlan(bundle), reference, { env: registry.env });
    const pieces = (await manifestOf(reference)).layers.filter((layer) => layer.mediaType.endsWith('disk.v2'));
    expect(pieces.map((piece) => piece.annotations?.['org.cirruslabs.tart.uncompressed-size'])).toEqual([String(512 * MiB), String(512 * MiB), String(512 * MiB), String(3 * MiB)]);
    expect(pieces[1]!.digest).toBe(pieces[2]!.digest);
    const cacheRoot = await freshDir('cache');
    const pulled = await pullImage(reference, pullOptions(cacheRoot));
    expect(pulled).toMatchObject({ digest: pushed.digest, fromCache: false });
    expect(await sameFile(join(pulled.dir, 'disk.img'), join(bundle, 'disk.img'))).toBe(true);
    expect(await allocatedBytes(join(pulled.dir, 'disk.img'))).toBeLessThanOrEqual((await allocatedBytes(join(bundle, 'disk.img'))) + 6 * 64 * 1024);
  });

  it("uses a complete bundle in Tart's cache instead of pulling", { timeout: 60_000 }, async () => {
    const bundle = await makeBundle('tart-cache', 3 * PIECE, [[PIECE, diskLikeData(100 * 1024)]]);
    const reference = `${registry.host}/team/tart-cache:v1`;
    const { digest } = await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
    const tartCacheRoot = await freshDir('tart-oci');
    const tartDir = imageDir(tartCacheRoot, registry.host, 'team/tart-cache', digest);
    await mkdir(tartDir, { recursive: true });
    for (const name of ['config.json', 'nvram.bin', 'disk.img']) await cp(join(bundle, name), join(tartDir, name));
    const cacheRoot = await freshDir('cache');
    const since = requestCount();
    const pulled = await pullImage(reference, { ...pullOptions(cacheRoot), tartCacheRoot });
    expect(pulled).toMatchObject({ digest, dir: tartDir, fromCache: true, source: 'tart-cache', kind: 'tart' });
    expect(blobGets(since)).toEqual([]);
  });
});

describe('Tart contract', () => {
  /**
   * JSON the way Swift's JSONEncoder with .sortedKeys writes Tart's structs, written here
   * without src/oci's encoder so a shared mistake cannot make both sides agree.
   */
  const esc = (text: string) => text.replaceAll('/', '\\/');
  const layerJson = (mediaType: string, digest: string, size: number, annotations: Array<[string, string]>) =>
    `{"annotations":{${annotations.map(([k, v]) => `"${k}":"${v}"`).join(',')}},"digest":"${digest}","mediaType":"${esc(mediaType)}","size":${size}}`;
  const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

  it('pulls an image built the way Tart builds it (lz4 CLI blocks with previous-block references, real 512 MiB pieces, shared zero pieces) into a bundle whose bytes match', { timeout: 300_000 }, async () => {
    const { appleLz4FromLz4Cli } = await import('../support/lz4-cli-apple.js');
    const PIECE_512 = 512 * MiB;
    // Pieces: 0 data, 1 and 2 all zeros, 3 (the short last one) data.
    const size = 3 * PIECE_512 + 4 * MiB + 12345;
    const dir = await makeBundle('tart-contract', size, [
      [10 * MiB, diskLikeData(3 * MiB)],
      [PIECE_512 - 64 * 1024, diskLikeData(64 * 1024)],
      [3 * PIECE_512 + 1 * MiB, diskLikeData(2 * MiB)],
    ]);
    const config = await readFile(join(dir, 'config.json'));
    const nvram = await readFile(join(dir, 'nvram.bin'));
    const client = new RegistryClient(registry.host, 'cirruslabs/contract', { env: registry.env });
    const push = async (data: Buffer) => {
      const digest = sha(data);
      if (!(await client.blobExists(digest))) await client.pushBlob(digest, data.length, data);
      return digest;
    };

    const diskFile = await open(join(dir, 'disk.img'), 'r');
    const layers: string[] = [layerJson('application/vnd.cirruslabs.tart.config.v1', await push(config), config.length, [])];
    const pieceDigests: string[] = [];
    try {
      for (let offset = 0; offset < size; offset += PIECE_512) {
        const piece = Buffer.alloc(Math.min(PIECE_512, size - offset));
        await diskFile.read(piece, 0, piece.length, offset);
        // Tart compresses every piece on its own, zero ones included: same input, same blob.
        const compressed = await appleLz4FromLz4Cli(piece);
        const digest = await push(compressed);
        pieceDigests.push(digest);
        layers.push(
          layerJson('application/vnd.cirruslabs.tart.disk.v2', digest, compressed.length, [
            ['org.cirruslabs.tart.uncompressed-content-digest', sha(piece)],
            ['org.cirruslabs.tart.uncompressed-size', String(piece.length)],
          ]),
        );
      }
    } finally {
      await diskFile.close();
    }
    expect(pieceDigests[1]).toBe(pieceDigests[2]);
    layers.push(layerJson('application/vnd.cirruslabs.tart.nvram.v1', await push(nvram), nvram.length, []));
    const stub = Buffer.from('{"architecture":"arm64","config":{"Labels":{"org.cirruslabs.tart.disk.format":"raw"}},"os":"darwin"}');
    const stubDigest = await push(stub);
    const manifest = Buffer.from(
      `{"annotations":{"org.cirruslabs.tart.uncompressed-disk-size":"${size}","org.cirruslabs.tart.upload-time":"2026-11-30T02:53:53Z"},` +
        `"config":{"digest":"${stubDigest}","mediaType":"application\\/vnd.oci.image.config.v1+json","size":${stub.length}},` +
        `"layers":[${layers.join(',')}],"mediaType":"application\\/vnd.oci.image.manifest.v1+json","schemaVersion":2}`,
    );
    const digest = await client.putManifest('sequoia', manifest, 'application/vnd.oci.image.manifest.v1+json');

    const cacheRoot = await freshDir('cache');
    const since = requestCount();
    const pulled = await pullImage(`${registry.host}/cirruslabs/contract:sequoia`, pullOptions(cacheRoot));
    expect(pulled).toMatchObject({ digest, kind: 'tart', fromCache: false });
    expect((await readFile(join(pulled.dir, 'config.json'))).equals(config)).toBe(true);
    expect((await readFile(join(pulled.dir, 'nvram.bin'))).equals(nvram)).toBe(true);
    expect(await sameFile(join(pulled.dir, 'disk.img'), join(dir, 'disk.img'))).toBe(true);
    expect((await stat(join(pulled.dir, 'disk.img'))).size).toBe(size);
    // Tart's manifest.json of a manifest Tart wrote is those very bytes.
    expect((await readFile(join(pulled.dir, 'manifest.json'))).equals(manifest)).toBe(true);
    expect(await allocatedBytes(join(pulled.dir, 'disk.img'))).toBeLessThan(16 * MiB);
    expect(blobGets(since).map((get) => get.digest)).not.toContain(pieceDigests[1]);
  });
});

describe.each([
  { where: 'on the main thread', decodeThreads: 0 },
  { where: 'in worker threads', decodeThreads: 2 },
])('decoding $where: failures leave nothing installed, and resume', ({ decodeThreads }) => {
  it('a corrupted blob is MACVM_IMAGE_CORRUPT naming the layer; the staging dir stays private; the next pull succeeds', { timeout: 60_000 }, async () => {
    const bundle = await makeBundle('corrupt', 4 * PIECE, [
      [0, diskLikeData(200 * 1024)],
      [2 * PIECE, diskLikeData(300 * 1024)],
    ]);
    const reference = `${registry.host}/team/corrupt:v${decodeThreads}`;
    const { digest } = await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
    const manifest = await manifestOf(reference);
    const target = manifest.layers[3]!; // the third disk piece, the one with data at 2 MiB
    registry.injectFault({ method: 'GET', path: new RegExp(`/blobs/${target.digest}$`), fault: { kind: 'corrupt', at: 2000 } });
    const cacheRoot = await freshDir('cache');
    const error = await macvmErrorOf(pullImage(reference, pullOptions(cacheRoot, { decodeThreads })));
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(error.message).toContain(target.digest);
    expect(error.message).toContain('disk layer 3');
    expect(await findCached(cacheRoot, reference)).toBeUndefined();
    expect(await listCachedImages(cacheRoot)).toEqual([]);
    await expect(stat(imageDir(cacheRoot, registry.host, 'team/corrupt', digest))).rejects.toMatchObject({ code: 'ENOENT' });
    const staging = join(cacheRoot, '.staging');
    expect((await stat(staging)).mode & 0o777).toBe(0o700);
    const [kept] = await readdir(staging);
    expect((await stat(join(staging, kept!))).mode & 0o777).toBe(0o700);

    registry.clearFaults();
    const pulled = await pullImage(reference, pullOptions(cacheRoot, { decodeThreads }));
    expect(await sameFile(join(pulled.dir, 'disk.img'), join(bundle, 'disk.img'))).toBe(true);
  });

  it('an interrupted pull resumes: the next one asks for the rest with Range and skips the pieces already done', { timeout: 60_000 }, async () => {
    // Random bytes do not compress: each data piece is a ~1 MiB blob.
    const bundle = await makeBundle('resume', 5 * PIECE, [0, 1, 2, 3, 4].map((i) => [i * PIECE, randomBytes(PIECE)] as [number, Buffer]));
    const reference = `${registry.host}/team/resume:v${decodeThreads}`;
    await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
    const pieces = (await manifestOf(reference)).layers.filter((layer) => layer.mediaType.endsWith('disk.v2'));
    const cut = pieces[2]!;
    registry.injectFault({ method: 'GET', path: new RegExp(`/blobs/${cut.digest}$`), fault: { kind: 'cut', afterBytes: 400_000 } });
    const cacheRoot = await freshDir('cache');
    const first = await macvmErrorOf(pullImage(reference, pullOptions(cacheRoot, { concurrency: 1, retries: 0, decodeThreads })));
    expect(first.code).toBe('MACVM_REGISTRY_ERROR');
    expect(await findCached(cacheRoot, reference)).toBeUndefined();

    const since = requestCount();
    const progress: TransferProgress[] = [];
    const pulled = await pullImage(reference, pullOptions(cacheRoot, { concurrency: 1, decodeThreads, onProgress: (p) => progress.push(p) }));
    // The progress counts what crossed the network this time, and reaches its total.
    const verify = progress.find((p) => p.phase === 'verify')!;
    expect(verify.doneBytes).toBe(verify.totalBytes);
    expect(verify.totalBytes).toBeLessThan(pieces.slice(2).reduce((sum, piece) => sum + piece.size, 0));
    expect(await sameFile(join(pulled.dir, 'disk.img'), join(bundle, 'disk.img'))).toBe(true);
    const gets = blobGets(since);
    // Pieces 0 and 1 (and the config and NVRAM) finished before the cut: not fetched again.
    for (const done of [pieces[0]!, pieces[1]!]) expect(gets.map((get) => get.digest)).not.toContain(done.digest);
    const resumed = gets.filter((get) => get.digest === cut.digest);
    expect(resumed).toHaveLength(1);
    const from = Number(/^bytes=(\d+)-$/.exec(resumed[0]!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(400_000);
    expect(gets.filter((get) => get.digest === pieces[3]!.digest)).toEqual([{ digest: pieces[3]!.digest }]);
  });

});

describe('refusals before anything is fetched', () => {
  it('refuses a disk.v1 image with MACVM_IMAGE_FORMAT_UNSUPPORTED before fetching a blob', { timeout: 30_000 }, async () => {
    const client = new RegistryClient(registry.host, 'team/legacy', { env: registry.env });
    const blob = Buffer.from('not really a disk');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    await client.pushBlob(digest, blob.length, blob);
    const descriptor = (mediaType: string) => ({ mediaType, digest, size: blob.length });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: descriptor('application/vnd.oci.image.config.v1+json'),
        layers: [descriptor('application/vnd.cirruslabs.tart.config.v1'), descriptor('application/vnd.cirruslabs.tart.disk.v1'), descriptor('application/vnd.cirruslabs.tart.nvram.v1')],
      }),
    );
    await client.putManifest('old', manifest, 'application/vnd.oci.image.manifest.v1+json');
    const since = requestCount();
    const error = await macvmErrorOf(pullImage(`${registry.host}/team/legacy:old`, pullOptions(await freshDir('cache'))));
    expect(error.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect(error.message).toContain('disk.v1');
    expect(blobGets(since)).toEqual([]);
  });

  it('checks free space first: MACVM_DISK_SPACE says how much is needed and free, and nothing is fetched', { timeout: 30_000 }, async () => {
    const bundle = await makeBundle('space', 6 * PIECE, [0, 2, 4].map((i) => [i * PIECE, randomBytes(PIECE)] as [number, Buffer]));
    const reference = `${registry.host}/team/space:v1`;
    await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
    const since = requestCount();
    const error = await macvmErrorOf(pullImage(reference, pullOptions(await freshDir('cache'), { statfs: async () => ({ bavail: 1000, bsize: 4096 }) })));
    expect(error.code).toBe('MACVM_DISK_SPACE');
    expect(error.message).toMatch(/needs up to [\d.]+ MiB free under .*, and 3\.91 MiB are free/);
    // Three data pieces of 1 MiB plus their blobs, the small files, and the margin: more than 3 MiB, less than 100.
    expect(error.details.neededBytes).toBeGreaterThan(6 * MiB);
    expect(error.details.neededBytes).toBeLessThan(100 * MiB);
    expect(blobGets(since)).toEqual([]);
  });

  it('refuses a pull onto a filesystem too small for it (a real 16 MiB tmpfs)', { timeout: 30_000 }, async (context) => {
    const mountPoint = await freshDir('tmpfs');
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint]);
    } catch {
      context.skip('needs permission to mount a tmpfs');
    }
    try {
      const bundle = await makeBundle('tmpfs-space', 6 * PIECE, [0, 2, 4].map((i) => [i * PIECE, randomBytes(PIECE)] as [number, Buffer]));
      const reference = `${registry.host}/team/tmpfs-space:v1`;
      await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
      const error = await macvmErrorOf(pullImage(reference, pullOptions(mountPoint)));
      expect(error.code).toBe('MACVM_DISK_SPACE');
      expect(error.message).toContain(mountPoint);
    } finally {
      await run('umount', [mountPoint]);
    }
  });
});

describe('once, and only what changed', () => {
  it('two processes pulling the same image at once download it once', { timeout: 120_000 }, async () => {
    const bundle = await makeBundle('two-processes', 4 * PIECE, [0, 1, 3].map((i) => [i * PIECE, diskLikeData(PIECE)] as [number, Buffer]));
    const reference = `${registry.host}/team/two-processes:v1`;
    const { digest } = await pushImage(await tartPushPlan(bundle), reference, { env: registry.env, pieceSize: PIECE });
    const cacheRoot = await freshDir('cache');
    // Slow blobs, so the two pulls surely overlap.
    registry.injectFault({ method: 'GET', path: /\/blobs\//, fault: { kind: 'hold', ms: 300 }, times: Infinity });
    const since = requestCount();
    const { file, nodeArgs } = siblingEntry(import.meta.url.replace('/integration/', '/support/'), 'oci-pull-child');
    const child = () => run(process.execPath, [...nodeArgs, file, JSON.stringify({ reference, options: pullOptions(cacheRoot) })], { timeout: 90_000 });
    let results;
    try {
      results = (await Promise.all([child(), child()])).map(({ stdout }) => JSON.parse(stdout.trim().split('\n').pop()!) as { digest: string; dir: string; fromCache: boolean });
    } finally {
      registry.clearFaults();
    }
    expect(results.map((result) => result.digest)).toEqual([digest, digest]);
    expect(results[0]!.dir).toBe(results[1]!.dir);
    expect(results.filter((result) => !result.fromCache)).toHaveLength(1);
    const perDigest = new Map<string, number>();
    for (const get of blobGets(since)) perDigest.set(get.digest, (perDigest.get(get.digest) ?? 0) + 1);
    expect(perDigest.size).toBeGreaterThan(0);
    expect([...perDigest.values()].every((count) => count === 1)).toBe(true);
    expect(await sameFile(join(results[0]!.dir, 'disk.img'), join(bundle, 'disk.img'))).toBe(true);
  });

  it('a moved tag fetches only the piece that changed', { timeout: 60_000 }, async () => {
    const regions = [0, 1, 2, 3].map((i) => [i * PIECE, diskLikeData(PIECE)] as [number, Buffer]);
    const v1 = await makeBundle('moved-v1', 5 * PIECE, regions);
    const reference = `${registry.host}/team/moved:stable`;
    const first = await pushImage(await tartPushPlan(v1), reference, { env: registry.env, pieceSize: PIECE });
    const cacheRoot = await freshDir('cache');
    await pullImage(reference, pullOptions(cacheRoot));

    // v2: the same bundle with piece 2 changed.
    const v2 = await freshDir('moved-v2');
    await cp(v1, v2, { recursive: true });
    const disk = await open(join(v2, 'disk.img'), 'r+');
    await disk.write(randomBytes(4096), 0, 4096, 2 * PIECE + 5000);
    await disk.close();
    const second = await pushImage(await tartPushPlan(v2), reference, { env: registry.env, pieceSize: PIECE });
    expect(second.digest).not.toBe(first.digest);
    const changed = (await manifestOf(reference)).layers.filter((layer) => layer.mediaType.endsWith('disk.v2'))[2]!;

    const since = requestCount();
    const pulled = await pullImage(reference, pullOptions(cacheRoot));
    expect(pulled).toMatchObject({ digest: second.digest, fromCache: false });
    expect(blobGets(since)).toEqual([{ digest: changed.digest }]);
    expect(await sameFile(join(pulled.dir, 'disk.img'), join(v2, 'disk.img'))).toBe(true);
    expect(await readlink(join(cacheRoot, registry.host.replace(':', '%3A'), 'team', 'moved', 'stable'))).toBe(second.digest);
    expect((await listCachedImages(cacheRoot)).map((image) => image.digest).sort()).toEqual([first.digest, second.digest].sort());
  });
});
