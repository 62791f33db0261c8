/**
 * The tart provider's stand-in world, shared by the tart contract tests: the stand-in `tart`
 * (test/fixtures/tart/fake-tart.mjs, replaying the real CLI's output and exit codes) on a PATH
 * of its own, with its state in a private FAKE_TART_HOME.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './run-macvm.js';

const FAKE_TART = join(REPO_ROOT, 'test', 'fixtures', 'tart', 'fake-tart.mjs');

export interface FakeTart {
  /** Where the stand-in keeps its VMs (<name>.json) and argv.log. */
  home: string;
  /** The environment that finds the stand-in as `tart`: PATH and FAKE_TART_HOME. */
  env: NodeJS.ProcessEnv;
  /** Every argv tart was called with, in order. */
  argvLog(): Promise<string[][]>;
  /** `tart list --format json`, as the stand-in reports it. */
  list(): Promise<Array<{ Name: string; Running: boolean; State: string }>>;
}

/** Installs the stand-in under `dir` with one local image (as `tart pull` leaves it). */
export async function installFakeTart(dir: string, image = 'sonoma-base'): Promise<FakeTart> {
  const home = join(dir, 'tart-home');
  await mkdir(home, { recursive: true });
  await mkdir(join(dir, 'bin'), { recursive: true });
  await symlink(FAKE_TART, join(dir, 'bin', 'tart'));
  await writeFile(join(home, `${image}.json`), JSON.stringify({ name: image, cpu: 4, memory: 8192, disk: 50, source: 'local' }));
  const env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, FAKE_TART_HOME: home };
  return {
    home,
    env,
    argvLog: async () => (await readFile(join(home, 'argv.log'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as string[]),
    list: async () => JSON.parse((await promisify(execFile)(join(dir, 'bin', 'tart'), ['list', '--format', 'json'], { env })).stdout) as Array<{ Name: string; Running: boolean; State: string }>,
  };
}
