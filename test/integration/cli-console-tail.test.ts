/**
 * A VM whose process dies during start-up: the CLI's error says "the console tail below" and
 * must print it. Here a real linux-test guest under qemu whose kernel cannot start its initrd
 * (`rdinit=` a missing file): it panics, and with -no-reboot qemu exits, before SSH is up.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMacvm } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;
let dir: string;

beforeAll(async () => {
  testHome = await createTestHome();
  dir = await mkdtemp(join(tmpdir(), 'macvm-console-tail-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await testHome?.cleanup();
});

describe('macvm vm start, VM dies during start-up', () => {
  it('prints the console tail it promises', async () => {
    // The real qemu, with a kernel command line (the last -append wins) whose initrd is missing.
    const wrapper = join(dir, 'qemu-panics');
    await writeFile(wrapper, '#!/bin/sh\nexec qemu-system-x86_64 "$@" -append "console=ttyS0 rdinit=/no-such-init panic=-1"\n');
    await chmod(wrapper, 0o755);
    const started = Date.now();
    const { code, stderr } = await runMacvm(['vm', 'start', 'linux-test', '--provider', 'qemu', '--deadline', '90'], {
      env: { MACVM_HOME: testHome.home, MACVM_QEMU_BINARY: wrapper, MACVM_ACCEL: 'tcg' },
    }).done;
    expect(code).not.toBe(0);
    // It fails as the VM dies, not when the 90 s deadline runs out.
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(stderr).toMatch(/MACVM_BOOT_FAILED/);
    expect(stderr).toMatch(/console tail below/);
    // ...and the tail is there: the guest kernel's own last words.
    const below = stderr.slice(stderr.indexOf('console tail below'));
    expect(below).toMatch(/Last console lines:\n/);
    expect(below).toMatch(/Kernel panic|Unable to mount root|No working init/i);
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });
});
