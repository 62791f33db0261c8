/**
 * MACVM_HOME and image dirs are private (0700): an image holds the guest's SSH host private
 * key (inside disk.qcow2) and the client's private key, so any local user who could read them
 * could impersonate the guest or log in to it. Created so, and tightened where they exist with
 * wider modes (homes made by older macvm versions were 0755).
 */
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensurePrivateHome } from '../../src/vm/home.js';
import { buildCachedImage } from '../../src/vm/qemu/image/cached-build.js';
import type { QemuImageManifest } from '../../src/vm/qemu/manifest.js';
import { createQemuProvider } from '../../src/vm/qemu/provider.js';
import { createTaggedRuntimeDir } from '../../src/vm/runtime-dir.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const dirs: string[] = [];
let testHome: TestHome | undefined;

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-modes-'));
  dirs.push(dir);
  return dir;
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  await testHome?.cleanup();
  testHome = undefined;
});

describe('private MACVM_HOME', () => {
  it('creates MACVM_HOME and images/ with mode 0700', async () => {
    const home = join(await scratch(), 'fresh-home');
    await ensurePrivateHome(home);
    expect(await modeOf(home)).toBe(0o700);
    expect(await modeOf(join(home, 'images'))).toBe(0o700);
  });

  it('tightens an existing 0755 home and images/ to 0700', async () => {
    const home = join(await scratch(), 'old-home');
    await mkdir(join(home, 'images'), { recursive: true, mode: 0o755 });
    await chmod(home, 0o755);
    await chmod(join(home, 'images'), 0o755);
    await ensurePrivateHome(home);
    expect(await modeOf(home)).toBe(0o700);
    expect(await modeOf(join(home, 'images'))).toBe(0o700);
  });

  it('a VM runtime dir made under a 0755 home leaves the home 0700', async () => {
    const home = join(await scratch(), 'run-home');
    await mkdir(home, { mode: 0o755 });
    await chmod(home, 0o755);
    const previous = process.env.MACVM_HOME;
    process.env.MACVM_HOME = home;
    try {
      const dir = await createTaggedRuntimeDir({ id: 'macvm-modes01', session: 's', provider: 'qemu', image: 'x', createdAt: new Date().toISOString() });
      expect(await modeOf(dir)).toBe(0o700);
      expect(await modeOf(home)).toBe(0o700);
    } finally {
      if (previous === undefined) delete process.env.MACVM_HOME;
      else process.env.MACVM_HOME = previous;
    }
  });

  it('an image build installs a 0700 image dir in a 0700 images/ dir', async () => {
    const home = join(await scratch(), 'build-home');
    await mkdir(join(home, 'images'), { recursive: true, mode: 0o755 });
    await chmod(home, 0o755);
    await chmod(join(home, 'images'), 0o755);
    const imageDir = join(home, 'images', 'tiny');
    await buildCachedImage({ name: 'tiny', recipe: 'tiny-1' }, { imageDir }, async (out) => {
      await writeFile(join(out, 'image.json'), '{}\n');
      return {} as QemuImageManifest;
    });
    expect(await modeOf(imageDir)).toBe(0o700);
    expect(await modeOf(join(home, 'images'))).toBe(0o700);
    expect(await modeOf(home)).toBe(0o700);
  });

  it('preparing an existing image tightens its dir, images/ and the home', async () => {
    testHome = await createTestHome();
    const imageDir = join(testHome.home, 'images', 'linux-test'); // a link to the built image
    await chmod(testHome.home, 0o755);
    await chmod(join(testHome.home, 'images'), 0o755);
    await chmod(imageDir, 0o755);
    const image = await createQemuProvider({ home: testHome.home }).prepare('linux-test');
    expect(image.name).toBe('linux-test');
    expect(await modeOf(imageDir)).toBe(0o700);
    expect(await modeOf(join(testHome.home, 'images'))).toBe(0o700);
    expect(await modeOf(testHome.home)).toBe(0o700);
  });
});
