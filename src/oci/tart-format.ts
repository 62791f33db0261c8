/**
 * Tart's OCI image format, as its source writes it (Sources/tart/OCI/Manifest.swift,
 * VMDirectory+OCI.swift, Layerizer/DiskV2.swift): the names, and the bytes Tart would produce.
 *
 * Tart serialises its manifest and stub config with Swift's JSONEncoder and `.sortedKeys`:
 * compact, keys sorted, and `/` escaped as `\/` (JSONEncoder's default). swiftJson() writes the
 * same, so a manifest built here, and the manifest.json a pulled bundle keeps, are the bytes
 * Tart itself writes for the same content.
 */
import { OCI_MANIFEST_MEDIA_TYPE, type OciDescriptor, type OciManifest } from './registry-client.js';

export { OCI_MANIFEST_MEDIA_TYPE };
export const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';

export const TART_CONFIG_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.config.v1';
export const TART_DISK_V2_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.disk.v2';
/** Tart's first disk format (one lz4-compressed blob per chunk, no offsets): Tart itself no longer pulls it. */
export const TART_DISK_V1_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.disk.v1';
export const TART_NVRAM_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.nvram.v1';

/** Manifest annotation: the disk's size, the sum of its pieces' uncompressed sizes. */
export const UNCOMPRESSED_DISK_SIZE_ANNOTATION = 'org.cirruslabs.tart.uncompressed-disk-size';
export const UPLOAD_TIME_ANNOTATION = 'org.cirruslabs.tart.upload-time';
/** Stub config label: Tart copies its config.json's `diskFormat` here (`raw` or `asif`). */
export const DISK_FORMAT_LABEL = 'org.cirruslabs.tart.disk.format';
/** Layer annotations on every disk piece. */
export const UNCOMPRESSED_SIZE_ANNOTATION = 'org.cirruslabs.tart.uncompressed-size';
export const UNCOMPRESSED_CONTENT_DIGEST_ANNOTATION = 'org.cirruslabs.tart.uncompressed-content-digest';
/** The OCI annotation naming a layer's file: macvm's file layers carry it; Tart's layers do not. */
export const TITLE_ANNOTATION = 'org.opencontainers.image.title';

/** The file each Tart layer becomes in a bundle (VMDirectory.swift). */
export const TART_FILE_NAMES = {
  [TART_CONFIG_MEDIA_TYPE]: 'config.json',
  [TART_DISK_V2_MEDIA_TYPE]: 'disk.img',
  [TART_NVRAM_MEDIA_TYPE]: 'nvram.bin',
} as const;
/** Tart keeps the manifest it pulled beside the VM's files, for deduplication on later pulls. */
export const TART_MANIFEST_FILE = 'manifest.json';

/**
 * JSON as Swift's JSONEncoder with `.sortedKeys` writes it: no white space, object keys in
 * ascending order (Tart's keys are plain ASCII, where Swift's order and code-point order agree),
 * `undefined` members left out (Swift's encodeIfPresent), and `/` escaped as `\/`.
 */
export function swiftJson(value: unknown): Buffer {
  return Buffer.from(encode(value), 'utf8');
}

function encode(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value).replaceAll('/', '\\/');
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`swiftJson: ${value} has no JSON form`);
    return JSON.stringify(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return `[${value.map(encode).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, member]) => member !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, member]) => `${encode(key)}:${encode(member)}`).join(',')}}`;
  }
  throw new TypeError(`swiftJson: a ${typeof value} has no JSON form`);
}

/** Tart's `Date.toISO()`: ISO 8601 in UTC to the second, `2026-11-30T02:53:53Z`. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface StubConfigInput {
  /** Tart's Architecture: `arm64` or `amd64`. */
  architecture: string;
  /** Tart's OS: `darwin` or `linux`. */
  os: string;
  labels: Record<string, string>;
}

/**
 * The stub image config Tart pushes "for Docker Hub compatibility" (OCIConfig): architecture,
 * os, and the labels under `config.Labels`.
 */
export function stubConfigBytes(input: StubConfigInput): Buffer {
  return swiftJson({ architecture: input.architecture, os: input.os, config: { Labels: input.labels } });
}

/**
 * A layer descriptor as Tart's OCIManifestLayer encodes it: `annotations` is always present,
 * `{}` when there are none (its initialiser assigns an empty dictionary).
 */
export function layerDescriptor(mediaType: string, digest: string, size: number, annotations: Record<string, string> = {}): OciDescriptor {
  return { mediaType, digest, size, annotations };
}

/** The annotations Tart puts on a disk piece. */
export function pieceAnnotations(uncompressedSize: number, uncompressedContentDigest: string): Record<string, string> {
  return { [UNCOMPRESSED_SIZE_ANNOTATION]: String(uncompressedSize), [UNCOMPRESSED_CONTENT_DIGEST_ANNOTATION]: uncompressedContentDigest };
}

export interface ManifestInput {
  config: { digest: string; size: number };
  layers: OciDescriptor[];
  /** Sum of the disk pieces' uncompressed sizes; left out when the image has no disk. */
  uncompressedDiskSize?: number;
  uploadTime?: Date;
  /** Further manifest annotations (Tart writes only the two above). */
  annotations?: Record<string, string>;
}

/** The manifest bytes Tart pushes (OCIManifest.toJSON()) for this content. */
export function manifestBytes(input: ManifestInput): Buffer {
  const annotations: Record<string, string> = { ...input.annotations };
  if (input.uncompressedDiskSize !== undefined) annotations[UNCOMPRESSED_DISK_SIZE_ANNOTATION] = String(input.uncompressedDiskSize);
  if (input.uploadTime) annotations[UPLOAD_TIME_ANNOTATION] = isoSeconds(input.uploadTime);
  return swiftJson({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: OCI_CONFIG_MEDIA_TYPE, size: input.config.size, digest: input.config.digest },
    layers: input.layers.map(tartLayer),
    annotations,
  });
}

/**
 * The manifest.json Tart writes into a bundle it pulled: the manifest decoded into Tart's
 * OCIManifest and encoded again, so members Tart does not model are dropped and an absent
 * `annotations` stays absent.
 */
export function tartManifestJson(manifest: OciManifest): Buffer {
  return swiftJson({
    schemaVersion: manifest.schemaVersion,
    mediaType: manifest.mediaType ?? OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: manifest.config.mediaType, size: manifest.config.size, digest: manifest.config.digest },
    layers: manifest.layers.map(tartLayer),
    annotations: manifest.annotations,
  });
}

function tartLayer(layer: OciDescriptor): Record<string, unknown> {
  return { mediaType: layer.mediaType, size: layer.size, digest: layer.digest, annotations: layer.annotations };
}
