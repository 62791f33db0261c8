import { describe, expect, it } from 'vitest';
import { MacvmError } from '../../src/errors.js';
import { formatSize, parseSize, parseSizeBytes } from '../../src/util/size.js';

describe('parseSize', () => {
  it('reads binary units as powers of two, in MiB', () => {
    expect(parseSize('8GiB')).toBe(8192);
    expect(parseSize('512MiB')).toBe(512);
    expect(parseSize('1TiB')).toBe(1024 * 1024);
    expect(parseSize('2048KiB')).toBe(2);
    expect(parseSize('1.5GiB')).toBe(1536);
  });

  it('reads the single letters K, M, G, T as binary units (qemu/Docker convention)', () => {
    expect(parseSize('8G')).toBe(8192);
    expect(parseSize('256M')).toBe(256);
    expect(parseSize('1T')).toBe(1048576);
  });

  it('reads decimal units as powers of ten, exactly', () => {
    expect(parseSizeBytes('80GB')).toBe(80_000_000_000);
    expect(parseSizeBytes('1MB')).toBe(1_000_000);
    expect(parseSizeBytes('3KB')).toBe(3_000);
    // 80e9 bytes / 2^20 = 76293.945..., rounded up so a disk is never smaller than asked
    expect(parseSize('80GB')).toBe(76294);
    expect(parseSize('1GB')).toBe(954);
  });

  it('treats bare numbers and numeric strings as MiB', () => {
    expect(parseSize(1024)).toBe(1024);
    expect(parseSize('1024')).toBe(1024);
    expect(parseSizeBytes(1)).toBe(1048576);
  });

  it('accepts any case and a space before the unit', () => {
    expect(parseSize('8 gib')).toBe(8192);
    expect(parseSize(' 4 GiB ')).toBe(4096);
    expect(parseSizeBytes('10b')).toBe(10);
  });

  it.each([['8 gigs'], ['GiB'], [''], ['-1GiB'], ['0'], ['1e3'], ['8GiBs'], ['12XB']])('rejects %j with a coded error naming the key', (bad) => {
    try {
      parseSize(bad, 'defaults.memory');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(MacvmError);
      expect((error as MacvmError).code).toBe('MACVM_CONFIG_INVALID');
      expect((error as MacvmError).message).toContain('defaults.memory must be a positive size');
      expect((error as MacvmError).message).toContain(`got "${bad}"`);
    }
  });

  it('rejects non-positive and non-finite numbers', () => {
    expect(() => parseSize(0, 'disk')).toThrow(/disk must be a positive size.*got 0/);
    expect(() => parseSize(-5, 'disk')).toThrow(/got -5/);
    expect(() => parseSize(Number.NaN, 'disk')).toThrow(/got NaN/);
  });
});

describe('formatSize', () => {
  it('picks the largest binary unit that keeps the number at least 1', () => {
    expect(formatSize(512)).toBe('512MiB');
    expect(formatSize(8192)).toBe('8GiB');
    expect(formatSize(1536)).toBe('1.5GiB');
    expect(formatSize(1048576)).toBe('1TiB');
  });
});
