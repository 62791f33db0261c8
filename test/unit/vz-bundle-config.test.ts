import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { parseTartConfig, serializeTartConfig } from '../../src/vm/vz/bundle-config.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tart');
const read = (name: string) => readFileSync(join(fixtures, name), 'utf8');

function expectCorrupt(text: string, fragment: RegExp): void {
  try {
    parseTartConfig(text);
  } catch (error) {
    expect(isMacvmError(error, 'MACVM_IMAGE_CORRUPT')).toBe(true);
    expect((error as Error).message).toMatch(fragment);
    return;
  }
  throw new Error('expected MACVM_IMAGE_CORRUPT');
}

describe("Tart's config.json", () => {
  it('reads a darwin bundle config with Tart\'s keys', () => {
    const config = parseTartConfig(read('darwin-config.json'));
    expect(config).toMatchObject({
      version: 1,
      os: 'darwin',
      arch: 'arm64',
      cpuCountMin: 4,
      cpuCount: 4,
      memorySizeMin: 8 * 2 ** 30,
      memorySize: 8 * 2 ** 30,
      macAddress: '0e:5a:03:00:01:02',
      display: { width: 1024, height: 768 },
      diskFormat: 'raw',
    });
    // ecid and hardwareModel are base64 of binary plists (the VZ data representations)
    expect(Buffer.from(config.ecid!, 'base64').subarray(0, 8).toString()).toBe('bplist00');
    expect(Buffer.from(config.hardwareModel!, 'base64').subarray(0, 8).toString()).toBe('bplist00');
  });

  it('reads older Tart configs: sync key, display unit, MAC without leading zeros', () => {
    const config = parseTartConfig(read('darwin-config-older.json'));
    expect(config.sync).toBe('none');
    expect(config.display).toEqual({ width: 1920, height: 1200, unit: 'px' });
    expect(config.macAddress).toBe('a2:cf:13:07:e1:03');
    expect(config.diskFormat).toBe('raw');
  });

  it('reads a linux bundle, which has no ecid or hardwareModel', () => {
    const config = parseTartConfig(read('linux-config.json'));
    expect(config.os).toBe('linux');
    expect(config.ecid).toBeUndefined();
  });

  it('parses every fixture config and round-trips it through serialize', () => {
    for (const name of readdirSync(fixtures).filter((n) => n.endsWith('-config.json'))) {
      const config = parseTartConfig(read(name));
      const again = parseTartConfig(serializeTartConfig(config));
      const { raw: _a, ...first } = config;
      const { raw: _b, ...second } = again;
      expect(second, name).toEqual(first);
    }
  });

  it('keeps keys it does not know when rewriting, and writes changed values', () => {
    const text = read('darwin-config.json').replace('"version" : 1', '"version" : 1, "futureKey" : {"x" : 1}');
    const config = parseTartConfig(text);
    const out = JSON.parse(serializeTartConfig({ ...config, macAddress: '02:11:22:33:44:55', cpuCount: 6 }));
    expect(out.futureKey).toEqual({ x: 1 });
    expect(out.macAddress).toBe('02:11:22:33:44:55');
    expect(out.cpuCount).toBe(6);
  });

  it('defaults os, arch, display and diskFormat the way Tart does', () => {
    const minimal = JSON.parse(read('darwin-config.json'));
    delete minimal.os;
    delete minimal.arch;
    delete minimal.display;
    delete minimal.diskFormat;
    const config = parseTartConfig(JSON.stringify(minimal));
    expect(config).toMatchObject({ os: 'darwin', arch: 'arm64', display: { width: 1024, height: 768 }, diskFormat: 'raw' });
  });

  it('refuses broken configs with a message naming the key', () => {
    const base = JSON.parse(read('darwin-config.json'));
    expectCorrupt('{not json', /not JSON/);
    expectCorrupt(JSON.stringify({ ...base, version: 2 }), /version 2/);
    expectCorrupt(JSON.stringify({ ...base, macAddress: 'nope' }), /macAddress/);
    expectCorrupt(JSON.stringify({ ...base, cpuCount: '4' }), /cpuCount/);
    expectCorrupt(JSON.stringify({ ...base, ecid: undefined }), /ecid/);
    expectCorrupt(JSON.stringify({ ...base, os: 'windows' }), /"os"/);
    expectCorrupt(JSON.stringify({ ...base, display: { width: 0, height: 1 } }), /display/);
    expectCorrupt(JSON.stringify({ ...base, diskFormat: 'qcow2' }), /diskFormat/);
  });
});
