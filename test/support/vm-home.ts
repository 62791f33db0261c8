/**
 * A private MACVM_HOME for an integration test: its own run/, sessions/ and slots/, with
 * the real images linked in from the user's MACVM_HOME (building linux-test — and
 * linux-browser when asked for — there first if it is missing). `leftovers()` says what
 * the test left behind — runtime dirs and qemu processes started under this home — so
 * every test can assert "nothing left".
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { macvmHome } from '../../src/vm/home.js';
import { buildLinuxBrowserImage } from '../../src/vm/qemu/image/build-linux-browser.js';
import { buildLinuxTestImage } from '../../src/vm/qemu/image/build-linux-test.js';

/** The images macvm builds itself, which a test home can link in. */
const BUILDERS = { 'linux-test': buildLinuxTestImage, 'linux-browser': buildLinuxBrowserImage } as const;
export type TestImage = keyof typeof BUILDERS;

export interface TestHome {
  home: string;
  /** Runtime dirs and qemu PIDs belonging to this home. */
  leftovers(): Promise<{ runtimeDirs: string[]; qemuPids: number[] }>;
  /** Kills whatever is left (after the assertion) and removes the home. */
  cleanup(): Promise<void>;
}

/** `images`: which images to link in; linux-test is always there. */
export async function createTestHome(options: { images?: TestImage[] } = {}): Promise<TestHome> {
  const realHome = macvmHome();
  const names = [...new Set<TestImage>(['linux-test', ...(options.images ?? [])])];
  const imageDir = (name: TestImage) => join(realHome, 'images', name);
  // Built before the temp home exists, so a failed build leaves nothing behind.
  for (const name of names) if (!existsSync(join(imageDir(name), 'image.json'))) await BUILDERS[name]({ imageDir: imageDir(name) });
  const home = await mkdtemp(join(tmpdir(), 'macvm-home-'));
  await mkdir(join(home, 'images'), { recursive: true });
  for (const name of names) await symlink(imageDir(name), join(home, 'images', name));
  // The accelerator verdict is a fact of the host, not of a home: probed once, shared by every test home.
  await mkdir(join(realHome, 'accel'), { recursive: true, mode: 0o700 });
  await symlink(join(realHome, 'accel'), join(home, 'accel'));
  process.env.MACVM_HOME = home;
  const qemuPids = () => pidsWithArgument(home);
  return {
    home,
    async leftovers() {
      const runtimeDirs = await readdir(join(home, 'run')).catch(() => [] as string[]);
      return { runtimeDirs, qemuPids: qemuPids() };
    },
    async cleanup() {
      for (const pid of qemuPids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await rm(home, { recursive: true, force: true });
      delete process.env.MACVM_HOME;
    },
  };
}

/** PIDs of qemu-system processes whose command line mentions `text` (their runtime dir lives under it). */
export function pidsWithArgument(text: string): number[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-f', `qemu-system.*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => pid !== process.pid);
}
