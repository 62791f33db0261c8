/**
 * A damaged base disk — garbage, or a truncated copy — fails the start as
 * MACVM_IMAGE_CORRUPT (with a rebuild hint), not as a clone or boot failure, and leaves
 * nothing behind. Each case uses a copy of linux-test in a private MACVM_HOME.
 */
import { randomBytes } from 'node:crypto';
import { cp, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { macvmHome } from '../../src/vm/home.js';
import { startMacVM } from '../../src/machine/start.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';
import { macvmErrorOf as thrown } from '../support/macvm-error.js';

let testHome: TestHome;
let realImage: string;

beforeAll(async () => {
  testHome = await createTestHome();
  realImage = join(testHome.home, 'images', 'linux-test');
});

afterAll(async () => {
  await testHome?.cleanup();
});

/** A full copy of linux-test under a new name, its disk then damaged by `damage`. */
async function damagedCopy(name: string, damage: (disk: string) => Promise<void>): Promise<string> {
  const dir = join(testHome.home, 'images', name);
  await cp(realImage, dir, { recursive: true, dereference: true });
  const disk = join(dir, 'disk.qcow2');
  await rm(disk, { force: true });
  await cp(join(realImage, 'disk.qcow2'), disk);
  await damage(disk);
  return name;
}

describe('a corrupt base disk', () => {
  it('of garbage is MACVM_IMAGE_CORRUPT', async () => {
    expect(process.env.MACVM_HOME).toBe(testHome.home);
    expect(macvmHome()).toBe(testHome.home);
    const image = await damagedCopy('garbage-disk', (disk) => writeFile(disk, randomBytes(256 * 1024)));
    const error = await thrown(() => startMacVM({ image, provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 60_000 }));
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(error.message).toContain('not qcow2');
    expect(error.message).toContain('--force');
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });

  it('truncated to its first MiB is MACVM_IMAGE_CORRUPT', async () => {
    const image = await damagedCopy('truncated-disk', async (disk) => {
      const handle = await open(disk, 'r+');
      await handle.truncate(1024 * 1024);
      await handle.close();
    });
    const error = await thrown(() => startMacVM({ image, provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 60_000 }));
    expect(error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect(error.message).toContain('damaged');
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });
});
