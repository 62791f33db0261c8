import { describe, expect, it } from 'vitest';
import { QEMU_DISK_MEDIA_TYPE, QEMU_FILE_MEDIA_TYPE, QEMU_IMAGE_MEDIA_TYPE, isSafeFileName, readImageLayout } from '../../src/oci/image-layout.js';
import type { OciManifest } from '../../src/oci/registry-client.js';
import {
  TART_CONFIG_MEDIA_TYPE,
  TART_DISK_V1_MEDIA_TYPE,
  TART_DISK_V2_MEDIA_TYPE,
  TART_NVRAM_MEDIA_TYPE,
  layerDescriptor,
  manifestBytes,
  pieceAnnotations,
  stubConfigBytes,
  swiftJson,
  tartManifestJson,
} from '../../src/oci/tart-format.js';
import { macvmErrorOf } from '../support/macvm-error.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;

describe("Tart's JSON (Swift JSONEncoder with .sortedKeys)", () => {
  it('writes compact JSON with sorted keys, escaped slashes and no undefined members', () => {
    expect(swiftJson({ b: 1, a: 'x/y', c: undefined, d: [true, null, { z: 'q', y: 2 }] }).toString()).toBe('{"a":"x\\/y","b":1,"d":[true,null,{"y":2,"z":"q"}]}');
  });

  it('builds the stub config and the manifest byte for byte as Tart would', () => {
    expect(stubConfigBytes({ architecture: 'arm64', os: 'darwin', labels: { 'org.cirruslabs.tart.disk.format': 'raw' } }).toString()).toBe(
      '{"architecture":"arm64","config":{"Labels":{"org.cirruslabs.tart.disk.format":"raw"}},"os":"darwin"}',
    );
    const bytes = manifestBytes({
      config: { digest: digest('c'), size: 10 },
      layers: [
        layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5),
        layerDescriptor(TART_DISK_V2_MEDIA_TYPE, digest('2'), 7, pieceAnnotations(4096, digest('3'))),
        layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('4'), 3),
      ],
      uncompressedDiskSize: 4096,
      uploadTime: new Date('2026-11-30T02:53:53.123Z'),
    });
    // Written out by hand from Manifest.swift's structs: every layer has `annotations` (an
    // empty dictionary when none), keys sorted, `/` escaped.
    expect(bytes.toString()).toBe(
      '{"annotations":{"org.cirruslabs.tart.uncompressed-disk-size":"4096","org.cirruslabs.tart.upload-time":"2026-11-30T02:53:53Z"},' +
        `"config":{"digest":"${digest('c')}","mediaType":"application\\/vnd.oci.image.config.v1+json","size":10},` +
        '"layers":[' +
        `{"annotations":{},"digest":"${digest('1')}","mediaType":"application\\/vnd.cirruslabs.tart.config.v1","size":5},` +
        `{"annotations":{"org.cirruslabs.tart.uncompressed-content-digest":"${digest('3')}","org.cirruslabs.tart.uncompressed-size":"4096"},"digest":"${digest('2')}","mediaType":"application\\/vnd.cirruslabs.tart.disk.v2","size":7},` +
        `{"annotations":{},"digest":"${digest('4')}","mediaType":"application\\/vnd.cirruslabs.tart.nvram.v1","size":3}` +
        '],"mediaType":"application\\/vnd.oci.image.manifest.v1+json","schemaVersion":2}',
    );
    // Tart's manifest.json of the same manifest, decoded and encoded again, is the same bytes.
    expect(tartManifestJson(JSON.parse(bytes.toString()) as OciManifest).equals(bytes)).toBe(true);
  });

  it("keeps manifest.json as Tart re-encodes it: unknown members dropped, absent annotations absent", () => {
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest('c'), size: 1 },
      layers: [{ mediaType: TART_NVRAM_MEDIA_TYPE, digest: digest('4'), size: 3, urls: ['x'] }],
      subject: { digest: digest('9') },
    } as unknown as OciManifest;
    expect(tartManifestJson(manifest).toString()).toBe(
      `{"config":{"digest":"${digest('c')}","mediaType":"application\\/vnd.oci.image.config.v1+json","size":1},"layers":[{"digest":"${digest('4')}","mediaType":"application\\/vnd.cirruslabs.tart.nvram.v1","size":3}],"mediaType":"application\\/vnd.oci.image.manifest.v1+json","schemaVersion":2}`,
    );
  });
});

function tartManifest(layers: OciManifest['layers']): OciManifest {
  return { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest('c'), size: 1 }, layers };
}
const piece = (d: string, size: number, content: string, extra: Record<string, string> = {}) => layerDescriptor(TART_DISK_V2_MEDIA_TYPE, digest(d), 9, { ...pieceAnnotations(size, digest(content)), ...extra });

describe('readImageLayout', () => {
  it("maps a Tart image to its bundle: config.json, disk.img from the pieces in order, nvram.bin", () => {
    const layout = readImageLayout(
      tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5), piece('2', 100, 'a'), piece('3', 100, 'b'), piece('4', 30, 'a'), layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('5'), 3)]),
      'r',
    );
    expect(layout.kind).toBe('tart');
    expect(layout.files.map((f) => [f.name, f.index])).toEqual([['config.json', 0], ['nvram.bin', 4]]);
    expect(layout.disks).toHaveLength(1);
    expect(layout.disks[0]!.name).toBe('disk.img');
    expect(layout.disks[0]!.size).toBe(230);
    expect(layout.disks[0]!.pieces.map((p) => [p.index, p.offset, p.size, p.contentDigest])).toEqual([
      [1, 0, 100, digest('a')],
      [2, 100, 100, digest('b')],
      [3, 200, 30, digest('a')],
    ]);
  });

  it('names qemu layers by title, else by default, and refuses an untitled file layer', async () => {
    const layout = readImageLayout(
      tartManifest([
        layerDescriptor(QEMU_IMAGE_MEDIA_TYPE, digest('1'), 5),
        layerDescriptor(QEMU_DISK_MEDIA_TYPE, digest('2'), 5, pieceAnnotations(10, digest('a'))),
        layerDescriptor(QEMU_FILE_MEDIA_TYPE, digest('3'), 5, { 'org.opencontainers.image.title': 'vmlinux' }),
      ]),
      'r',
    );
    expect(layout.kind).toBe('macvm-qemu');
    expect(layout.files.map((f) => f.name)).toEqual(['image.json', 'vmlinux']);
    expect(layout.disks.map((d) => d.name)).toEqual(['disk.qcow2']);
    const error = await macvmErrorOf(() =>
      readImageLayout(tartManifest([layerDescriptor(QEMU_IMAGE_MEDIA_TYPE, digest('1'), 5), layerDescriptor(QEMU_DISK_MEDIA_TYPE, digest('2'), 5, pieceAnnotations(10, digest('a'))), layerDescriptor(QEMU_FILE_MEDIA_TYPE, digest('3'), 5)]), 'r'),
    );
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(error.message).toContain('layer 2');
  });

  it.each([['../evil'], ['a/b'], ['.hidden'], [''], ['..'], ['x\u0000y'], ['x\\y']])('refuses the title %j as MACVM_IMAGE_CORRUPT', async (title) => {
    expect(isSafeFileName(title)).toBe(false);
    const error = await macvmErrorOf(() =>
      readImageLayout(tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5, { 'org.opencontainers.image.title': title }), piece('2', 1, 'a'), layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('5'), 3)]), 'r'),
    );
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
  });

  it('refuses disk.v1 with a hint to re-push, and unknown media types, as MACVM_IMAGE_FORMAT_UNSUPPORTED', async () => {
    const v1 = await macvmErrorOf(() =>
      readImageLayout(tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5), layerDescriptor(TART_DISK_V1_MEDIA_TYPE, digest('2'), 5), layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('5'), 3)]), 'ghcr.io/x/y:old'),
    );
    expect(v1.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect(v1.message).toContain('disk.v1');
    expect(v1.hint).toMatch(/tart push/);
    const unknown = await macvmErrorOf(() => readImageLayout(tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5), piece('2', 1, 'a'), layerDescriptor('application/x-other', digest('5'), 3)]), 'r'));
    expect(unknown.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect(unknown.message).toContain('application/x-other');
    const container = await macvmErrorOf(() => readImageLayout(tartManifest([layerDescriptor('application/vnd.oci.image.layer.v1.tar+gzip', digest('1'), 5)]), 'r'));
    expect(container.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    const index = await macvmErrorOf(() => readImageLayout(tartManifest([]), 'r', 'application/vnd.oci.image.index.v1+json'));
    expect(index.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
  });

  it('refuses pieces without their annotations, a second config, and a malformed digest as MACVM_IMAGE_CORRUPT', async () => {
    const noSize = await macvmErrorOf(() => readImageLayout(tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5), layerDescriptor(TART_DISK_V2_MEDIA_TYPE, digest('2'), 5), layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('5'), 3)]), 'r'));
    expect(noSize.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(noSize.message).toContain('uncompressed-size');
    const twoConfigs = await macvmErrorOf(() =>
      readImageLayout(tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5), layerDescriptor(TART_CONFIG_MEDIA_TYPE, digest('1'), 5), piece('2', 1, 'a'), layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('5'), 3)]), 'r'),
    );
    expect(twoConfigs.code).toBe('MACVM_IMAGE_CORRUPT');
    const badDigest = await macvmErrorOf(() =>
      readImageLayout(tartManifest([layerDescriptor(TART_CONFIG_MEDIA_TYPE, 'sha256:../../etc', 5), piece('2', 1, 'a'), layerDescriptor(TART_NVRAM_MEDIA_TYPE, digest('5'), 3)]), 'r'),
    );
    expect(badDigest.code).toBe('MACVM_IMAGE_CORRUPT');
  });
});
