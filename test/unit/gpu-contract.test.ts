import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { gpu, parseDisplaysJson, requireGpu } from '../../src/guest/gpu.js';
import { FakeGuestSession } from '../fixtures/macos/fake-guest-session.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '..', 'fixtures', 'macos', `system_profiler-SPDisplaysDataType-${name}.json`), 'utf8');

describe('system_profiler contract: SPDisplaysDataType parsing', () => {
  it('reads a real Apple Silicon capture (M1): Metal 3, Retina scale from pixels vs points', () => {
    const [adapter] = parseDisplaysJson(fixture('apple-m1'));
    expect(adapter).toEqual({
      name: 'Apple M1',
      vendor: 'Apple',
      metal: 'Metal 3',
      software: false,
      displays: [{ name: 'Color LCD', width: 2880, height: 1800, scale: 2, main: true }],
    });
  });

  it('recognises the Apple Paravirtual device of a VZ macOS guest as hardware rendering', () => {
    const [adapter] = parseDisplaysJson(fixture('vz-paravirtual'));
    expect(adapter).toMatchObject({ name: 'Apple Paravirtual device', vendor: 'Apple', metal: 'Metal 3', software: false });
    expect(adapter!.displays[0]).toMatchObject({ width: 3840, height: 2160, scale: 2 });
  });

  it('reads the older Intel-era Metal key (spdisplays_metal feature set family)', () => {
    expect(parseDisplaysJson(fixture('intel-iris-6100'))[0]).toMatchObject({ name: 'Intel Iris Graphics 6100', vendor: 'Intel', metal: 'Metal (feature set family 13)', software: false });
  });

  it('flags an adapter without Metal as software rendering, and requireGpu fails on it', () => {
    const [adapter] = parseDisplaysJson(fixture('no-metal-vm'));
    expect(adapter).toMatchObject({ vendor: 'VMware', metal: undefined, software: true });
    try {
      requireGpu(adapter!, 'visual');
      expect.fail('accepted software rendering');
    } catch (error) {
      expect(isMacvmError(error, 'MACVM_GPU_REQUIRED')).toBe(true);
      expect((error as Error).message).toContain('Suite "visual" requires GPU rendering');
    }
    expect(() => requireGpu(parseDisplaysJson(fixture('vz-paravirtual'))[0]!)).not.toThrow();
  });

  it('runs exactly `system_profiler -json SPDisplaysDataType` in the guest', async () => {
    const guest = new FakeGuestSession(() => ({ stdout: fixture('vz-paravirtual') }));
    expect((await gpu(guest)).name).toBe('Apple Paravirtual device');
    expect(guest.commands).toEqual([['system_profiler', '-json', 'SPDisplaysDataType']]);
  });

  it('says so when the guest is not macOS', async () => {
    const guest = new FakeGuestSession(() => ({ exitCode: 127, stderr: 'sh: system_profiler: not found' }));
    await expect(gpu(guest)).rejects.toSatisfy((error: unknown) => isMacvmError(error, 'MACVM_NOT_SUPPORTED') && /not found/.test((error as Error).message));
  });
});
