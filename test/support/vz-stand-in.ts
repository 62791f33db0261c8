/**
 * The vz provider's stand-in world, shared by the vz contract tests: Tart-style bundles under
 * MACVM_HOME/images, and the real vmhost process started with plain node and the stand-in
 * addon (test/fixtures/vz/fake-addon.cjs), which replays Virtualization.framework's behaviour
 * and logs each call to `callsLog`.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmhostCommandLine } from '../../src/vm/vz/running-vm.js';
import { REPO_ROOT } from './run-macvm.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

/** A bundle as `macvm image create` or `tart pull` leaves it: config.json, disk.img, nvram.bin. */
export async function makeVzBundle(home: string, name: string): Promise<string> {
  const bundle = join(home, 'images', name);
  await mkdir(bundle, { recursive: true });
  await copyFile(join(FIXTURES, 'tart', 'darwin-config.json'), join(bundle, 'config.json'));
  await writeFile(join(bundle, 'disk.img'), Buffer.alloc(64 * 1024));
  await writeFile(join(bundle, 'nvram.bin'), Buffer.alloc(1024));
  return bundle;
}

/** vmhost from the sources under plain node, loading the stand-in addon. */
export function standInVmhost(callsLog: string, env: NodeJS.ProcessEnv = process.env): VmhostCommandLine {
  return {
    command: process.execPath,
    args: ['--import', import.meta.resolve('tsx'), join(REPO_ROOT, 'src', 'vm', 'vz', 'vmhost-main.ts')],
    env: { ...env, MACVM_VZ_ADDON: join(FIXTURES, 'vz', 'fake-addon.cjs'), MACVM_FAKE_VZ_LOG: callsLog },
  };
}

/** `arp -an` answering every clone under MACVM_HOME/run with `ip` (test/fixtures/vz/arp-for-clones.mjs). */
export function arpForClones(ip: string): string[] {
  return [process.execPath, join(FIXTURES, 'vz', 'arp-for-clones.mjs'), ip];
}
