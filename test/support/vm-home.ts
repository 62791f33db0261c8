/**
 * A private MACVM_HOME for an integration test: its own run/, sessions/ and slots/, with
 * the real images linked in from the user's MACVM_HOME (building linux-test there first
 * if it is missing). `leftovers()` says what the test left behind — runtime dirs and
 * qemu processes started under this home — so every test can assert "nothing left".
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { macvmHome } from '../../src/vm/home.js';
import { buildLinuxTestImage } from '../../src/vm/qemu/image/build-linux-test.js';

export interface TestHome {
  home: string;
  /** Runtime dirs and qemu PIDs belonging to this home. */
  leftovers(): Promise<{ runtimeDirs: string[]; qemuPids: number[] }>;
  /** Kills whatever is left (after the assertion) and removes the home. */
  cleanup(): Promise<void>;
}

export async function createTestHome(): Promise<TestHome> {
  const realHome = macvmHome();
  const imageDir = join(realHome, 'images', 'linux-test');
  if (!existsSync(join(imageDir, 'image.json'))) await buildLinuxTestImage({ imageDir });
  const home = await mkdtemp(join(tmpdir(), 'macvm-home-'));
  await mkdir(join(home, 'images'), { recursive: true });
  await symlink(imageDir, join(home, 'images', 'linux-test'));
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
