/**
 * Pulled images on disk, in Tart's own cache layout (VMStorageOCI.swift):
 *
 *   <cacheRoot>/<registry>/<repository>/sha256:<hex>/   the image's files
 *   <cacheRoot>/<registry>/<repository>/<tag>           a symlink to sha256:<hex>
 *
 * with `:` in the registry written `%3A` as Tart writes it (127.0.0.1%3A5000). An image directory
 * only ever appears complete (the pull renames it into place), and macvm's metadata file in it —
 * reference, digest, kind, when, and the disk pieces for deduplicating later pulls — is written
 * before that rename, so its presence is what "installed" means.
 *
 * Tart's own cache (`$TART_HOME/cache/OCIs`, else `~/.tart/cache/OCIs`) has the same layout; a
 * complete bundle there is used read-only instead of pulling the same image twice.
 */
import { lstat, readFile, readdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { type ImageKind, readImageLayout } from './image-layout.js';
import { DIGEST_PATTERN, type ImageReference, parseImageReference } from './reference.js';
import type { OciManifest } from './registry-client.js';
import { TART_FILE_NAMES, TART_MANIFEST_FILE } from './tart-format.js';

/** macvm's record of an installed image, inside its directory (hidden, so no layer title can take the name). */
export const METADATA_FILE = '.macvm-image.json';

export interface CachedPiece {
  /** The disk file the piece belongs to, inside the image directory. */
  file: string;
  offset: number;
  size: number;
  contentDigest: string;
}

export interface CachedFile {
  name: string;
  /** The layer's digest: sha256 of the file's bytes. */
  digest: string;
  size: number;
}

export interface ImageMetadata {
  version: 1;
  /** The reference it was pulled as (`host/repo:tag` or `host/repo@sha256:…`). */
  reference: string;
  digest: string;
  kind: ImageKind;
  pulledAt: string;
  /** Sum of its files' sizes (apparent; the disk is sparse). */
  sizeBytes: number;
  /** Whole-blob layers (config, NVRAM, image.json, kernel), for reuse by later pulls. */
  files: CachedFile[];
  pieces: CachedPiece[];
}

export interface CachedImage {
  dir: string;
  digest: string;
  metadata: ImageMetadata;
}

export interface CachedImageEntry {
  /** Every name it has here: `host/repo:tag` for each tag pointing at it, and `host/repo@sha256:…`. */
  references: string[];
  digest: string;
  kind: ImageKind;
  dir: string;
  pulledAt: string;
  sizeBytes: number;
  /** What its files take on disk (allocated blocks × 512): far less than sizeBytes for a sparse disk. */
  diskUsageBytes: number;
}

/** Tart writes the registry host with `:` percent-encoded, so `host:port` stays one path component on every OS. */
export function encodeRegistry(registry: string): string {
  return registry.replaceAll(':', '%3A');
}

export function repositoryDir(cacheRoot: string, registry: string, repository: string): string {
  return join(cacheRoot, encodeRegistry(registry), ...repository.split('/'));
}

export function imageDir(cacheRoot: string, registry: string, repository: string, digest: string): string {
  return join(repositoryDir(cacheRoot, registry, repository), digest);
}

export async function readMetadata(dir: string): Promise<ImageMetadata | undefined> {
  try {
    const metadata = JSON.parse(await readFile(join(dir, METADATA_FILE), 'utf8')) as ImageMetadata;
    return metadata && metadata.version === 1 && typeof metadata.digest === 'string' && Array.isArray(metadata.pieces) ? metadata : undefined;
  } catch {
    return undefined;
  }
}

export async function writeMetadata(dir: string, metadata: ImageMetadata): Promise<void> {
  await writeFileAtomic(join(dir, METADATA_FILE), `${JSON.stringify(metadata, null, 2)}\n`, { mode: 0o600 });
}

/** The installed image with this digest, if the cache has it complete. */
export async function findInstalled(cacheRoot: string, registry: string, repository: string, digest: string): Promise<CachedImage | undefined> {
  const dir = imageDir(cacheRoot, registry, repository, digest);
  const metadata = await readMetadata(dir);
  return metadata?.digest === digest ? { dir, digest, metadata } : undefined;
}

/**
 * The cached image a reference names, without asking the registry: by digest, or by the tag's
 * symlink (which says what the tag pointed at when it was last pulled, not what it points at now).
 */
export async function findCached(cacheRoot: string, reference: string | ImageReference): Promise<CachedImage | undefined> {
  const ref = typeof reference === 'string' ? parseImageReference(reference) : reference;
  let digest = ref.digest;
  if (!digest) {
    const target = await readlink(join(repositoryDir(cacheRoot, ref.registry, ref.repository), ref.tag ?? 'latest')).catch(() => undefined);
    if (!target || !DIGEST_PATTERN.test(target)) return undefined;
    digest = target;
  }
  return findInstalled(cacheRoot, ref.registry, ref.repository, digest);
}

/** Points `tag` at the image `digest`: a relative symlink, replaced atomically (a reader sees the old or the new target). */
export async function linkTag(cacheRoot: string, registry: string, repository: string, tag: string, digest: string): Promise<void> {
  const dir = repositoryDir(cacheRoot, registry, repository);
  const link = join(dir, tag);
  if ((await readlink(link).catch(() => undefined)) === digest) return;
  const temp = join(dir, `.${tag}.${process.pid}.${Date.now()}.link`);
  await symlink(digest, temp);
  try {
    await rename(temp, link);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Every installed image under `cacheRoot`, with all the names it has (for `macvm image ls`). */
export async function listCachedImages(cacheRoot: string): Promise<CachedImageEntry[]> {
  const images = new Map<string, CachedImageEntry>();
  const tags: Array<{ repoDir: string; tag: string; target: string }> = [];
  await walk(cacheRoot, async (path, name, isLink) => {
    if (isLink) {
      const target = await readlink(path).catch(() => '');
      if (DIGEST_PATTERN.test(target)) tags.push({ repoDir: join(path, '..'), tag: name, target });
      return false;
    }
    if (!DIGEST_PATTERN.test(name)) return true;
    const metadata = await readMetadata(path);
    if (metadata?.digest === name) {
      const base = nameOf(cacheRoot, join(path, '..'));
      const usage = await diskUsage(path);
      images.set(path, { references: [`${base}@${name}`], digest: name, kind: metadata.kind, dir: path, pulledAt: metadata.pulledAt, sizeBytes: metadata.sizeBytes, diskUsageBytes: usage });
    }
    return false;
  });
  for (const { repoDir, tag, target } of tags.sort((a, b) => (a.tag < b.tag ? 1 : -1))) {
    // Tags first, in order, then the name by digest.
    images.get(join(repoDir, target))?.references.unshift(`${nameOf(cacheRoot, repoDir)}:${tag}`);
  }
  return [...images.values()].sort((a, b) => a.references[0]!.localeCompare(b.references[0]!));
}

/** `host/repo` for a repository directory under the cache root. */
function nameOf(cacheRoot: string, repoDir: string): string {
  const [host = '', ...path] = relative(cacheRoot, repoDir).split(sep);
  return [decodeURIComponent(host), ...path].join('/');
}

/** Visits entries below `dir`, skipping hidden ones (staging, locks); `visit` says whether to descend. */
async function walk(dir: string, visit: (path: string, name: string, isLink: boolean) => Promise<boolean>): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) await visit(path, entry.name, true);
    else if (entry.isDirectory() && (await visit(path, entry.name, false))) await walk(path, visit);
  }
}

async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) total += (await lstat(join(dir, entry.name))).blocks * 512;
  }
  return total;
}

/** Where Tart keeps pulled images: `$TART_HOME/cache/OCIs`, else `~/.tart/cache/OCIs` (Config.swift). */
export function defaultTartCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.TART_HOME || join(homedir(), '.tart'), 'cache', 'OCIs');
}

/**
 * The bundle Tart's cache holds for this digest, if it is complete: the three files Tart requires
 * (VMDirectory.initialized), each the size the manifest says. Tart installs a pull by moving a
 * finished directory into place, so one that exists is whole; the size check catches a bundle
 * someone changed since (a disk grown by `tart set --disk-size` on the cached image, say).
 */
export async function findTartBundle(tartCacheRoot: string, registry: string, repository: string, digest: string, manifest: OciManifest): Promise<string | undefined> {
  const dir = imageDir(tartCacheRoot, registry, repository, digest);
  let layout;
  try {
    layout = readImageLayout(manifest, `${registry}/${repository}@${digest}`);
  } catch {
    return undefined;
  }
  if (layout.kind !== 'tart') return undefined;
  const expected = [...layout.files.map((file) => ({ name: file.name, size: file.layer.size })), ...layout.disks.map((disk) => ({ name: disk.name, size: disk.size }))];
  for (const name of Object.values(TART_FILE_NAMES)) {
    if (!expected.some((file) => file.name === name)) return undefined;
  }
  for (const file of expected) {
    const info = await stat(join(dir, file.name)).catch(() => undefined);
    if (!info?.isFile() || info.size !== file.size) return undefined;
  }
  return dir;
}

/** Where bytes with a given sha256 can be copied from instead of downloaded. */
export interface ContentSource {
  path: string;
  offset: number;
  size: number;
}

/**
 * Everything the caches already hold, by the sha256 of its bytes: each disk piece (by its
 * uncompressed-content digest) and each whole-blob file (by its layer digest, the same kind of
 * hash), from macvm's images' metadata and from the manifest.json Tart keeps in each bundle it
 * pulled. So a pull of a moved tag downloads only what changed. A source is only a candidate:
 * the pull verifies what it copies and downloads the layer if the bytes differ.
 */
export async function cachedContentSources(cacheRoot: string, tartCacheRoot?: string): Promise<Map<string, ContentSource>> {
  const sources = new Map<string, ContentSource>();
  const add = (digest: string, source: ContentSource) => {
    if (!sources.has(digest)) sources.set(digest, source);
  };
  for (const image of await listCachedImages(cacheRoot).catch(() => [])) {
    const metadata = await readMetadata(image.dir);
    for (const piece of metadata?.pieces ?? []) add(piece.contentDigest, { path: join(image.dir, piece.file), offset: piece.offset, size: piece.size });
    for (const file of metadata?.files ?? []) add(file.digest, { path: join(image.dir, file.name), offset: 0, size: file.size });
  }
  if (tartCacheRoot) {
    await walk(tartCacheRoot, async (path, name, isLink) => {
      if (isLink) return false;
      if (!DIGEST_PATTERN.test(name)) return true;
      try {
        const manifest = JSON.parse(await readFile(join(path, TART_MANIFEST_FILE), 'utf8')) as OciManifest;
        const layout = readImageLayout(manifest, name);
        for (const disk of layout.disks) {
          for (const piece of disk.pieces) add(piece.contentDigest, { path: join(path, disk.name), offset: piece.offset, size: piece.size });
        }
        for (const file of layout.files) add(file.layer.digest, { path: join(path, file.name), offset: 0, size: file.layer.size });
      } catch {
        // Not a bundle with a manifest Tart wrote: nothing to reuse from it.
      }
      return false;
    });
  }
  return sources;
}
