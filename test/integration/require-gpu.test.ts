/**
 * `requireGpu: true` fails a suite before its first test when the guest renders in
 * software — here the linux-test guest, which has no GPU — and leaves no VM behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { defaultRunContext } from '../../src/runner/default-context.js';
import { startSuiteVM } from '../../src/runner/suite-vm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

describe('requireGpu', () => {
  let testHome: TestHome;
  beforeAll(async () => {
    testHome = await createTestHome();
  });
  afterAll(async () => {
    await testHome?.cleanup();
  });

  it('refuses a software-rendering guest with MACVM_GPU_REQUIRED and disposes its VM', async () => {
    const context = defaultRunContext({ ...process.env, MACVM_HOME: testHome.home, MACVM_PROVIDER: 'qemu' });
    const error = await startSuiteVM('needs metal', { image: 'linux-test', cpus: 1, memory: '256MiB', requireGpu: true }, context).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_GPU_REQUIRED')).toBe(true);
    expect((error as Error).message).toMatch(/Suite "needs metal" requires GPU rendering/);
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });

    // Without the requirement the same guest is fine.
    const suiteVM = await startSuiteVM('no gpu needed', { image: 'linux-test', cpus: 1, memory: '256MiB' }, context);
    expect((await suiteVM!.vm.gpu()).software).toBe(true);
    await suiteVM!.release();
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });
});
