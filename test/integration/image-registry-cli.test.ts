/**
 * `macvm image push` / `image pull` / `image ls` / `image rm` and a registry reference as the
 * image of `vm start`, as a user types them: the built CLI, a real registry (Debian's
 * docker-registry with htpasswd Basic auth, on 127.0.0.1) and a real qemu guest booted from
 * the pulled image with the fresh client key made at install.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../support/registry-server.js';
import { runMacvm } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

let testHome: TestHome;
let registry: TestRegistry;

beforeAll(async () => {
  testHome = await createTestHome();
  registry = await startRegistry({ auth: 'basic' });
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await testHome?.cleanup();
});

const macvm = (args: string[], env: NodeJS.ProcessEnv = registry.env) => runMacvm(args, { env: { ...env, MACVM_HOME: testHome.home } }).done;

describe('macvm image push / pull', () => {
  it('pushes linux-test, boots it by reference (pulled on first use), lists it with its digest, and removes it once no VM uses it', async () => {
    const reference = `${registry.host}/team/linux-test:v1`;
    const pushed = await macvm(['image', 'push', 'linux-test', reference, '--json']);
    expect(pushed.code, pushed.stderr).toBe(0);
    const { digest } = JSON.parse(pushed.stdout) as { digest: string };
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    // No `image pull` first: the reference is pulled by the VM's first use.
    const started = await macvm(['vm', 'start', reference, '--cpus', '1', '--memory', '256MiB', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const vm = JSON.parse(started.stdout) as { id: string; image: string };
    expect(vm.image).toBe(reference);
    expect(await macvm(['vm', 'exec', vm.id, '--', 'uname', '-s'])).toMatchObject({ code: 0, stdout: 'Linux\n' });

    const listed = JSON.parse((await macvm(['image', 'ls', '--json'])).stdout) as Array<{ name: string; provider?: string; digest?: string; references?: string[]; status: string }>;
    expect(listed).toContainEqual(expect.objectContaining({ name: reference, provider: 'qemu', digest, status: 'ok', references: [reference, `${registry.host}/team/linux-test@${digest}`] }));
    expect((await macvm(['image', 'ls'])).stdout).toContain(digest.slice('sha256:'.length, 'sha256:'.length + 12));

    const refused = await macvm(['image', 'rm', reference]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/in use by macvm-[0-9a-f]+[\s\S]*MACVM_BAD_ARGUMENT/);

    expect(await macvm(['vm', 'rm', vm.id])).toMatchObject({ code: 0 });
    expect(await macvm(['image', 'rm', reference])).toMatchObject({ code: 0, stdout: `${reference} removed (${digest})\n` });
    const after = JSON.parse((await macvm(['image', 'ls', '--json'])).stdout) as Array<{ name: string }>;
    expect(after.map((i) => i.name)).not.toContain(reference);
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  }, 300_000);

  it('withMacVM boots a registry reference; two runners starting at once download its blobs once', async () => {
    const reference = `${registry.host}/team/linux-test:spec`;
    expect((await macvm(['image', 'push', 'linux-test', reference])).code).toBe(0);
    const before = registry.stats().blobGetsByDigest;
    const spec = 'test/fixtures/runner/registry-image.spec.ts';
    const runs = await Promise.all(
      [1, 2].map((n) => runMacvm(['test', spec], { env: { ...registry.env, MACVM_HOME: testHome.home, MACVM_TEST_IMAGE: reference, MACVM_REPORTS_DIR: `${testHome.home}/reports-${n}` } }).done),
    );
    for (const run of runs) expect(run.code, run.stdout + run.stderr).toBe(0);
    const after = registry.stats().blobGetsByDigest;
    const fetched = Object.entries(after).filter(([digest, count]) => count > (before[digest] ?? 0));
    expect(fetched.length).toBeGreaterThan(0);
    for (const [digest, count] of fetched) expect(count - (before[digest] ?? 0), digest).toBe(1);
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  }, 300_000);

  it('`image pull` shows its progress and says where the image went; a second pull finds it in the cache', async () => {
    const reference = `${registry.host}/team/linux-test:progress`;
    expect((await macvm(['image', 'push', 'linux-test', reference])).code).toBe(0);
    const pulled = await macvm(['image', 'pull', reference]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).toMatch(/download/);
    expect(pulled.stdout).toMatch(new RegExp(`^${reference.replace(/[.:/]/g, '\\$&')} sha256:[0-9a-f]{64} \\(macvm qemu image, pulled in [0-9.]+s\\)`));
    const again = await macvm(['image', 'pull', reference]);
    expect(again.stdout).toMatch(/already in the cache/);
    expect((await macvm(['image', 'rm', reference])).code).toBe(0);
  }, 300_000);

  it('a wrong password is MACVM_REGISTRY_AUTH_FAILED, and the password is printed nowhere', async () => {
    const password = 'not-the-password-4711';
    const result = await macvm(['image', 'pull', `${registry.host}/team/linux-test:v1`], { ...registry.env, TART_REGISTRY_PASSWORD: password });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/MACVM_REGISTRY_AUTH_FAILED/);
    expect(result.stderr + result.stdout).not.toContain(password);
  }, 60_000);

  it('a plain image name is never taken for a reference, and a bad reference says what one looks like', async () => {
    const result = await macvm(['image', 'pull', 'Registry.example/UPPER:tag']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/MACVM_BAD_ARGUMENT/);
  });
});
