import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { Deadline } from '../../src/shared/deadline.js';
import { readVmRecord } from '../../src/vm/runtime-dir.js';
import type { RunningVM } from '../../src/vm/types.js';
import { parseTartConfig } from '../../src/vm/vz/bundle-config.js';
import { createVzProvider, resolveBundleDir, type VzProviderOptions } from '../../src/vm/vz/provider.js';
import { GUEST_HOST_KEY, TEST_SESSION } from '../fixtures/vz/contract-values.js';
import { makeVzBundle, standInVmhost } from '../support/vz-stand-in.js';

/**
 * Contract tests: the vz provider with the real vmhost process and a stand-in for the native
 * addon (test/fixtures/vz/fake-addon.cjs) that replays Virtualization.framework's behaviour.
 */
const session = TEST_SESSION;
const savedHome = process.env.MACVM_HOME;

let dir: string;
let home: string;
const vms: RunningVM[] = [];

const makeImage = (name: string) => makeVzBundle(home, name);

function provider(extra: Partial<VzProviderOptions> = {}) {
  return createVzProvider({
    home,
    images: { '*': { hostKey: GUEST_HOST_KEY } },
    allowFullCopy: true, // this host's ext4 has no clonefile; on APFS the clone path is taken
    vmhost: standInVmhost(join(dir, 'vz-calls.log')),
    address: { leasesPath: join(dir, 'dhcpd_leases'), arpCommand: ['false'], intervalMs: 50 },
    ...extra,
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-vz-'));
  home = join(dir, 'home');
  process.env.MACVM_HOME = home;
});
afterEach(async () => {
  for (const vm of vms.splice(0)) await vm.stop({ gracefulMs: 0 }).catch(() => {});
  process.env.MACVM_HOME = savedHome;
  await rm(dir, { recursive: true, force: true });
});

const calls = async () => (await readFile(join(dir, 'vz-calls.log'), 'utf8')).trim().split('\n');
const bundleConfig = async (bundle: string) => parseTartConfig(await readFile(join(bundle, 'config.json'), 'utf8'));

describe('vz provider contract', { timeout: 60_000 }, () => {
  it('resolves image names, tart: names and absolute bundle paths', () => {
    expect(resolveBundleDir('sonoma', '/h')).toBe('/h/images/sonoma');
    expect(resolveBundleDir('tart:sonoma-base')).toBe(join(homedir(), '.tart', 'vms', 'sonoma-base'));
    expect(resolveBundleDir('/bundles/x', '/h')).toBe('/bundles/x');
    expect(() => resolveBundleDir('../x', '/h')).toThrow(/not an image name/);
  });

  it('contract: prepare reads the Tart bundle; a bundle missing nvram.bin is corrupt', async () => {
    const bundle = await makeImage('sonoma');
    const image = await provider().prepare('sonoma');
    expect(image).toMatchObject({ provider: 'vz', os: 'macos', arch: 'aarch64', location: bundle, ssh: { user: 'admin', password: 'admin', hostKey: GUEST_HOST_KEY } });
    await rm(join(bundle, 'nvram.bin'));
    await expect(provider().prepare('sonoma')).rejects.toMatchObject({ code: 'MACVM_IMAGE_CORRUPT' });
    await expect(provider().prepare('missing')).rejects.toMatchObject({ code: 'MACVM_IMAGE_NOT_FOUND' });
  });

  it('contract: clone → boot → DHCP lease address → graceful stop → destroy, with a fresh MAC and machine identifier', async () => {
    const source = await makeImage('sonoma');
    const original = await bundleConfig(source);
    const p = provider();
    const deadline = new Deadline(60_000);
    const clone = await p.clone(await p.prepare('sonoma'), { session, deadline });
    const bundle = join(clone.runtimeDir, 'bundle');
    const cloned = await bundleConfig(bundle);
    expect(cloned.macAddress).not.toBe(original.macAddress);
    expect(Number.parseInt(cloned.macAddress.slice(0, 2), 16) & 0b11).toBe(0b10);
    expect(await readVmRecord(clone.runtimeDir)).toMatchObject({ id: clone.id, provider: 'vz', session: 'test-session', image: 'sonoma' });

    const vm = await clone.boot({ cpus: 6, memoryMiB: 16384, display: false, deadline });
    vms.push(vm);
    const booted = await bundleConfig(bundle);
    expect(booted.ecid).not.toBe(original.ecid);
    expect((await bundleConfig(source)).ecid).toBe(original.ecid); // the image is untouched
    expect(await readVmRecord(clone.runtimeDir)).toMatchObject({ pid: vm.pid, cpus: 6, memoryMiB: 16384 });
    expect(await calls()).toEqual([`new ${cloned.macAddress} cpus=6 memory=${16384 * 2 ** 20}`, 'start']);

    // bootpd writes the lease with the MAC's leading zeros dropped
    const macOsStyle = cloned.macAddress.split(':').map((o) => o.replace(/^0/, '')).join(':');
    await writeFile(join(dir, 'dhcpd_leases'), `{\n\tname=admins-Virtual-Machine\n\tip_address=192.168.64.9\n\thw_address=1,${macOsStyle}\n\tidentifier=1,${macOsStyle}\n\tlease=0x7fffffff\n}\n`);
    expect(await vm.endpoint(deadline)).toEqual({ host: '192.168.64.9', port: 22 });
    deadline.finish();

    await vm.stop({ gracefulMs: 5_000 });
    expect((await vm.exited).code).toBe(0);
    expect(await calls()).toContain('requestStop');

    // Booted again (vm.restart()): the same clone keeps its machine identifier and MAC, as a rebooted Mac keeps its hardware.
    expect(clone.bootsAgain).toBe(true);
    const again = await clone.boot({ cpus: 6, memoryMiB: 16384, display: false, deadline: new Deadline(60_000) });
    vms.push(again);
    expect(again.pid).not.toBe(vm.pid);
    expect(await bundleConfig(bundle)).toMatchObject({ ecid: booted.ecid, macAddress: cloned.macAddress });
    await again.stop({ gracefulMs: 5_000 });

    await clone.destroy();
    await expect(stat(clone.runtimeDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('contract: falls back to `arp -an` when the lease file has nothing', async () => {
    await makeImage('sonoma');
    const arpScript = join(dir, 'arp.mjs');
    const p0 = provider();
    const deadline = new Deadline(60_000);
    const clone = await p0.clone(await p0.prepare('sonoma'), { session, deadline });
    const mac = (await bundleConfig(join(clone.runtimeDir, 'bundle'))).macAddress;
    const short = mac.split(':').map((o) => o.replace(/^0/, '')).join(':');
    await writeFile(arpScript, `console.log(${JSON.stringify(`? (192.168.64.1) at 2:0:0:0:0:1 on bridge100 ifscope [bridge]\n? (192.168.64.12) at ${short} on bridge100 ifscope [bridge]`)});`);
    const p = provider({ address: { leasesPath: join(dir, 'none'), arpCommand: [process.execPath, arpScript], intervalMs: 50 } });
    const vm = await (await p.clone(await p.prepare('sonoma'), { session, deadline })).boot({ cpus: 4, memoryMiB: 8192, display: false, deadline });
    vms.push(vm);
    // the second clone has its own MAC; point arp at it
    const mac2 = (await bundleConfig(join(vm.clone.runtimeDir, 'bundle'))).macAddress;
    await writeFile(arpScript, `console.log(${JSON.stringify(`? (192.168.64.12) at ${mac2.split(':').map((o) => o.replace(/^0/, '')).join(':')} on bridge100 ifscope [bridge]`)});`);
    expect(await vm.endpoint(deadline)).toEqual({ host: '192.168.64.12', port: 22 });
    deadline.finish();
    await vm.clone.destroy();
    await clone.destroy();
  });

  it('contract: VZErrorVirtualMachineLimitExceeded at start fails the boot with MACVM_SLOT_LIMIT and ends vmhost', async () => {
    home = join(dir, 'limit-exceeded-home'); // the stand-in addon refuses disks under such a path
    process.env.MACVM_HOME = home;
    await makeImage('sonoma');
    const p = provider();
    const deadline = new Deadline(60_000);
    const clone = await p.clone(await p.prepare('sonoma'), { session, deadline });
    const error = await clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline }).catch((e: unknown) => e);
    deadline.finish();
    expect(isMacvmError(error, 'MACVM_SLOT_LIMIT')).toBe(true);
    const record = await readVmRecord(clone.runtimeDir);
    const { isAlive } = await import('../../src/util/process-identity.js');
    expect(isAlive(record!.pid!)).toBe(false);
    await clone.destroy();
  });

  // On macOS the temporary directory is on APFS, which clones: there is no filesystem without copy-on-write to stage.
  it.skipIf(process.platform === 'darwin')('contract: without copy-on-write on this filesystem, cloning refuses to copy the whole disk', async () => {
    await makeImage('sonoma');
    const p = provider({ allowFullCopy: false });
    const error = await p.clone(await p.prepare('sonoma'), { session, deadline: new Deadline(30_000) }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_CLONE_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/APFS/);
  });

  it('contract: without an entitled vmhost, boot says to run doctor --fix', async () => {
    await makeImage('sonoma');
    const p = createVzProvider({ home, images: { '*': { hostKey: GUEST_HOST_KEY } }, allowFullCopy: true });
    const deadline = new Deadline(30_000);
    const clone = await p.clone(await p.prepare('sonoma'), { session, deadline });
    const error = await clone.boot({ cpus: 4, memoryMiB: 8192, display: false, deadline }).catch((e: unknown) => e);
    deadline.finish();
    expect(isMacvmError(error, 'MACVM_ENTITLEMENT_MISSING')).toBe(true);
    expect((error as Error).message).toMatch(/doctor --fix/);
    await clone.destroy();
  });
});
