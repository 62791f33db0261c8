/**
 * Which files an image's layers become, for the two kinds of image the pull and push engine
 * serves: Tart's (a VM bundle: config.json, disk.img, nvram.bin) and macvm's own qemu images.
 *
 * Both cut their disk the same way (Tart's disk.v2: pieces in order, each Apple-LZ4 compressed,
 * annotated with its uncompressed size and digest); every other layer is one file as is. A
 * layer's file name is its `org.opencontainers.image.title` annotation, else its kind's default
 * for the media type. Reading a manifest here is also where images macvm cannot use are refused,
 * before a byte of them is downloaded.
 */
import { MacvmError } from '../errors.js';
import { DIGEST_PATTERN } from './reference.js';
import { DOCKER_MANIFEST_LIST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE, type OciDescriptor, type OciManifest } from './registry-client.js';
import {
  OCI_MANIFEST_MEDIA_TYPE,
  TART_CONFIG_MEDIA_TYPE,
  TART_DISK_V1_MEDIA_TYPE,
  TART_DISK_V2_MEDIA_TYPE,
  TART_FILE_NAMES,
  TART_MANIFEST_FILE,
  TART_NVRAM_MEDIA_TYPE,
  TITLE_ANNOTATION,
  UNCOMPRESSED_CONTENT_DIGEST_ANNOTATION,
  UNCOMPRESSED_SIZE_ANNOTATION,
} from './tart-format.js';

/** macvm's qemu images: image.json (what went in, the pinned host key), the qcow2 base, kernel and the like. */
export const QEMU_IMAGE_MEDIA_TYPE = 'application/vnd.macvm.qemu.image.v1+json';
export const QEMU_DISK_MEDIA_TYPE = 'application/vnd.macvm.qemu.disk.v1';
export const QEMU_FILE_MEDIA_TYPE = 'application/vnd.macvm.qemu.file.v1';

export type ImageKind = 'tart' | 'macvm-qemu';

interface KindRules {
  /** Media types a layer of this kind may have, with the file each becomes when untitled. */
  defaultNames: Record<string, string | undefined>;
  diskMediaType: string;
  /** Media types that must occur exactly once. */
  exactlyOnce: string[];
  /** Names the engine writes itself beside the layers' files. */
  reserved: string[];
}

export const KIND_RULES: Record<ImageKind, KindRules> = {
  tart: {
    defaultNames: { ...TART_FILE_NAMES },
    diskMediaType: TART_DISK_V2_MEDIA_TYPE,
    exactlyOnce: [TART_CONFIG_MEDIA_TYPE, TART_NVRAM_MEDIA_TYPE],
    reserved: [TART_MANIFEST_FILE],
  },
  'macvm-qemu': {
    defaultNames: { [QEMU_IMAGE_MEDIA_TYPE]: 'image.json', [QEMU_DISK_MEDIA_TYPE]: 'disk.qcow2', [QEMU_FILE_MEDIA_TYPE]: undefined },
    diskMediaType: QEMU_DISK_MEDIA_TYPE,
    exactlyOnce: [QEMU_IMAGE_MEDIA_TYPE],
    reserved: [],
  },
};

export interface LayoutFile {
  /** The layer's position in the manifest. */
  index: number;
  name: string;
  layer: OciDescriptor;
}

export interface LayoutPiece {
  index: number;
  layer: OciDescriptor;
  /** Where the decoded piece starts in its disk file. */
  offset: number;
  /** Its decoded size (the uncompressed-size annotation). */
  size: number;
  /** sha256 of the decoded piece (the uncompressed-content-digest annotation). */
  contentDigest: string;
}

export interface LayoutDisk {
  name: string;
  size: number;
  pieces: LayoutPiece[];
}

export interface ImageLayout {
  kind: ImageKind;
  files: LayoutFile[];
  disks: LayoutDisk[];
}

/**
 * What `manifest` becomes on disk. MACVM_IMAGE_FORMAT_UNSUPPORTED for an image of another kind
 * (a container image, an index, Tart's disk.v1, a media type neither kind knows);
 * MACVM_IMAGE_CORRUPT for one of a known kind whose manifest breaks its own rules.
 */
export function readImageLayout(manifest: OciManifest, reference: string, manifestMediaType?: string): ImageLayout {
  const mediaType = manifestMediaType ?? manifest.mediaType;
  if (mediaType === OCI_INDEX_MEDIA_TYPE || mediaType === DOCKER_MANIFEST_LIST_MEDIA_TYPE) {
    throw unsupported(reference, `it is a multi-platform index (${mediaType}), not a VM image`);
  }
  if (mediaType !== undefined && mediaType !== OCI_MANIFEST_MEDIA_TYPE) {
    throw unsupported(reference, `its manifest is ${mediaType}; Tart and macvm images use ${OCI_MANIFEST_MEDIA_TYPE}`);
  }
  const layers = Array.isArray(manifest.layers) ? manifest.layers : [];
  if (layers.length === 0) throw corrupt(reference, 'its manifest lists no layers');
  const types = layers.map((layer) => layer?.mediaType);
  if (types.includes(TART_DISK_V1_MEDIA_TYPE)) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `${reference} keeps its disk as ${TART_DISK_V1_MEDIA_TYPE}, Tart's legacy format, which macvm (like current Tart) does not pull.`, {
      hint: `Re-push it with a current Tart (\`tart pull\` it with an old Tart, then \`tart push\` with a new one): that writes ${TART_DISK_V2_MEDIA_TYPE}.`,
      details: { reference, mediaType: TART_DISK_V1_MEDIA_TYPE },
    });
  }
  const kind = kindOf(types);
  if (!kind) {
    const listed = [...new Set(types)].join(', ');
    throw unsupported(reference, `its layers (${listed}) are neither a Tart VM image nor a macvm qemu image`);
  }
  const rules = KIND_RULES[kind];
  const unknown = types.find((type) => typeof type !== 'string' || !(type in rules.defaultNames));
  if (unknown !== undefined) throw unsupported(reference, `it has a layer of media type ${String(unknown)}, which a ${kind} image does not use`);
  for (const type of rules.exactlyOnce) {
    const count = types.filter((t) => t === type).length;
    if (count !== 1) throw corrupt(reference, `it has ${count} layers of ${type} where a ${kind} image has exactly one`);
  }
  if (!types.includes(rules.diskMediaType)) throw corrupt(reference, `it has no ${rules.diskMediaType} layer (the disk)`);

  const files: LayoutFile[] = [];
  const disks = new Map<string, LayoutDisk>();
  layers.forEach((layer, index) => {
    checkDescriptor(layer, index, reference);
    const name = fileNameOf(layer, index, rules, reference);
    if (layer.mediaType !== rules.diskMediaType) {
      files.push({ index, name, layer });
      return;
    }
    const size = annotatedSize(layer, index, reference);
    const contentDigest = layer.annotations?.[UNCOMPRESSED_CONTENT_DIGEST_ANNOTATION];
    if (typeof contentDigest !== 'string' || !DIGEST_PATTERN.test(contentDigest)) {
      throw corrupt(reference, `disk layer ${index} (${layer.digest}) has no valid ${UNCOMPRESSED_CONTENT_DIGEST_ANNOTATION} annotation`);
    }
    const disk = disks.get(name) ?? { name, size: 0, pieces: [] };
    disk.pieces.push({ index, layer, offset: disk.size, size, contentDigest });
    disk.size += size;
    disks.set(name, disk);
  });

  const names = [...files.map((file) => file.name), ...disks.keys()];
  const taken = new Set<string>(rules.reserved);
  for (const name of names) {
    if (taken.has(name)) throw corrupt(reference, `two of its layers, or a layer and a file macvm writes, are both named "${name}"`);
    taken.add(name);
  }
  return { kind, files, disks: [...disks.values()] };
}

function kindOf(types: unknown[]): ImageKind | undefined {
  const known = (Object.keys(KIND_RULES) as ImageKind[]).filter((kind) => types.some((type) => typeof type === 'string' && type in KIND_RULES[kind].defaultNames));
  return known.length === 1 ? known[0] : undefined;
}

function checkDescriptor(layer: OciDescriptor, index: number, reference: string): void {
  if (typeof layer.digest !== 'string' || !layer.digest.startsWith('sha256:')) {
    throw unsupported(reference, `layer ${index} has digest ${String(layer.digest)}; macvm verifies sha256 digests only`);
  }
  if (!DIGEST_PATTERN.test(layer.digest)) throw corrupt(reference, `layer ${index} has a malformed digest ${layer.digest}`);
  if (!Number.isSafeInteger(layer.size) || layer.size < 0) throw corrupt(reference, `layer ${index} (${layer.digest}) has an invalid size ${String(layer.size)}`);
}

function annotatedSize(layer: OciDescriptor, index: number, reference: string): number {
  const text = layer.annotations?.[UNCOMPRESSED_SIZE_ANNOTATION];
  const size = typeof text === 'string' && /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(size)) throw corrupt(reference, `disk layer ${index} (${layer.digest}) has no valid ${UNCOMPRESSED_SIZE_ANNOTATION} annotation`);
  return size;
}

function fileNameOf(layer: OciDescriptor, index: number, rules: KindRules, reference: string): string {
  const title = layer.annotations?.[TITLE_ANNOTATION];
  if (title !== undefined) {
    if (!isSafeFileName(title)) throw corrupt(reference, `layer ${index} (${layer.digest}) is titled ${JSON.stringify(title)}, which is not a plain file name`);
    return title;
  }
  const name = rules.defaultNames[layer.mediaType];
  if (name === undefined) throw corrupt(reference, `layer ${index} (${layer.mediaType}) has no ${TITLE_ANNOTATION} annotation to name its file`);
  return name;
}

/**
 * A name a layer may give its file: one plain path component, not hidden (the engine's own
 * files are hidden), no separators or control characters, so no title can reach outside the
 * image's directory or overwrite what the engine keeps there.
 */
export function isSafeFileName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    Buffer.byteLength(name) <= 255 &&
    !name.startsWith('.') &&
    !/[/\\]/.test(name) &&
    // eslint-disable-next-line no-control-regex
    !/[\u0000-\u001f\u007f]/.test(name)
  );
}

function unsupported(reference: string, why: string): MacvmError {
  return new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `${reference} is not an image macvm can pull: ${why}.`, {
    hint: 'macvm pulls Tart VM images (disk.v2, as `tart push` writes them) and qemu images pushed by `macvm image push`; other images need the tool that made them.',
    details: { reference },
  });
}

function corrupt(reference: string, why: string): MacvmError {
  return new MacvmError('MACVM_IMAGE_CORRUPT', `${reference} has a broken manifest: ${why}.`, {
    hint: 'Re-push the image with the tool that made it (tart push, macvm image push).',
    details: { reference },
  });
}
