import { appendFile, mkdir, mkdtemp, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ImageMetadata,
  cachedContentSources,
  defaultTartCacheRoot,
  findCached,
  findTartBundle,
  imageDir,
  linkTag,
  listCachedImages,
  writeMetadata,
} from '../../src/oci/image-cache.js';
import { Journal } from '../../src/oci/pull-staging.js';
import type { OciManifest } from '../../src/oci/registry-client.js';
import { layerDescriptor, pieceAnnotations, swiftJson } from '../../src/oci/tart-format.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'macvm-oci-cache-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function install(cacheRoot: string, registry: string, repository: string, d: string, pieces: ImageMetadata['pieces'] = []): Promise<string> {
  const dir = imageDir(cacheRoot, registry, repository, d);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'disk.img'), Buffer.alloc(8192, 1));
  await writeMetadata(dir, { version: 1, reference: `${registry}/${repository}@${d}`, digest: d, kind: 'tart', pulledAt: '2026-11-30T00:00:00.000Z', sizeBytes: 8192, files: [], pieces });
  return dir;
}

describe("the image cache (Tart's layout)", () => {
  it('lays images out as Tart does, lists every name they have, and ignores what is not installed', async () => {
    const cacheRoot = join(root, 'list');
    const a = await install(cacheRoot, '127.0.0.1:5000', 'team/linux-test', digest('a'));
    await install(cacheRoot, 'ghcr.io', 'cirruslabs/macos-sonoma-base', digest('b'));
    expect(a).toBe(join(cacheRoot, '127.0.0.1%3A5000', 'team', 'linux-test', digest('a')));
    await linkTag(cacheRoot, '127.0.0.1:5000', 'team/linux-test', '2026-11', digest('a'));
    await linkTag(cacheRoot, '127.0.0.1:5000', 'team/linux-test', 'latest', digest('a'));
    // A digest directory without metadata (a pull that never finished installing) is no image.
    await mkdir(imageDir(cacheRoot, 'ghcr.io', 'cirruslabs/macos-sonoma-base', digest('c')), { recursive: true });
    await mkdir(join(cacheRoot, '.staging', 'x'), { recursive: true });

    const listed = await listCachedImages(cacheRoot);
    expect(listed.map((image) => image.references)).toEqual([
      ['127.0.0.1:5000/team/linux-test:2026-11', '127.0.0.1:5000/team/linux-test:latest', `127.0.0.1:5000/team/linux-test@${digest('a')}`],
      [`ghcr.io/cirruslabs/macos-sonoma-base@${digest('b')}`],
    ]);
    expect(listed[0]!.diskUsageBytes).toBeGreaterThan(0);
    expect((await findCached(cacheRoot, '127.0.0.1:5000/team/linux-test:latest'))?.dir).toBe(a);
    expect((await findCached(cacheRoot, `127.0.0.1:5000/team/linux-test@${digest('a')}`))?.digest).toBe(digest('a'));
    expect(await findCached(cacheRoot, '127.0.0.1:5000/team/linux-test:other')).toBeUndefined();
    expect(await findCached(cacheRoot, `ghcr.io/cirruslabs/macos-sonoma-base@${digest('c')}`)).toBeUndefined();
  });

  it('moves a tag to a new digest with a relative symlink', async () => {
    const cacheRoot = join(root, 'move');
    await install(cacheRoot, 'r.example', 'x', digest('1'));
    await install(cacheRoot, 'r.example', 'x', digest('2'));
    await linkTag(cacheRoot, 'r.example', 'x', 'stable', digest('1'));
    await linkTag(cacheRoot, 'r.example', 'x', 'stable', digest('2'));
    expect(await readlink(join(cacheRoot, 'r.example', 'x', 'stable'))).toBe(digest('2'));
    expect((await findCached(cacheRoot, 'r.example/x:stable'))?.digest).toBe(digest('2'));
  });

  it("knows Tart's cache and what both caches hold, by content digest", async () => {
    expect(defaultTartCacheRoot({ TART_HOME: '/srv/tart' })).toBe('/srv/tart/cache/OCIs');
    expect(defaultTartCacheRoot({ HOME: '/home/u' })).toMatch(/\.tart\/cache\/OCIs$/);
    const cacheRoot = join(root, 'sources');
    await install(cacheRoot, 'r.example', 'x', digest('1'), [{ file: 'disk.img', offset: 0, size: 4096, contentDigest: digest('e') }]);
    const tartRoot = join(root, 'tart');
    const manifest: OciManifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest('c'), size: 1 },
      layers: [
        layerDescriptor('application/vnd.cirruslabs.tart.config.v1', digest('f'), 2),
        layerDescriptor('application/vnd.cirruslabs.tart.disk.v2', digest('9'), 9, pieceAnnotations(4096, digest('d'))),
        layerDescriptor('application/vnd.cirruslabs.tart.disk.v2', digest('8'), 9, pieceAnnotations(100, digest('7'))),
        layerDescriptor('application/vnd.cirruslabs.tart.nvram.v1', digest('6'), 3),
      ],
    };
    const bundle = imageDir(tartRoot, 'ghcr.io', 'cirruslabs/x', digest('5'));
    await mkdir(bundle, { recursive: true });
    await writeFile(join(bundle, 'manifest.json'), swiftJson(manifest));
    await writeFile(join(bundle, 'config.json'), 'ab');
    await writeFile(join(bundle, 'nvram.bin'), 'xyz');
    await writeFile(join(bundle, 'disk.img'), Buffer.alloc(4196));
    const sources = await cachedContentSources(cacheRoot, tartRoot);
    expect(sources.get(digest('e'))).toEqual({ path: join(cacheRoot, 'r.example', 'x', digest('1'), 'disk.img'), offset: 0, size: 4096 });
    expect(sources.get(digest('7'))).toEqual({ path: join(bundle, 'disk.img'), offset: 4096, size: 100 });
    expect(sources.get(digest('f'))).toEqual({ path: join(bundle, 'config.json'), offset: 0, size: 2 });
    // A complete bundle is used; one whose disk is not the manifest's size is not.
    expect(await findTartBundle(tartRoot, 'ghcr.io', 'cirruslabs/x', digest('5'), manifest)).toBe(bundle);
    await appendFile(join(bundle, 'disk.img'), 'more');
    expect(await findTartBundle(tartRoot, 'ghcr.io', 'cirruslabs/x', digest('5'), manifest)).toBeUndefined();
  });
});

describe('the pull journal', () => {
  it('keeps what was recorded, across loads, and ignores a line cut short by a kill', async () => {
    const path = join(root, 'journal');
    const journal = await Journal.load(path);
    expect(journal.has(3, digest('a'))).toBe(false);
    await journal.record(3, digest('a'));
    await journal.record(5, digest('b'));
    await appendFile(path, '{"layer":7,"dig');
    const again = await Journal.load(path);
    expect(again.has(3, digest('a'))).toBe(true);
    expect(again.has(5, digest('b'))).toBe(true);
    expect(again.has(3, digest('b'))).toBe(false);
    expect(again.has(7, digest('c'))).toBe(false);
  });
});
