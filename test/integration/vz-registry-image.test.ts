/**
 * Contract test: the vz provider with a registry reference as its image, as far as a Linux host
 * allows — a Tart bundle pushed by `macvm image push` (the real CLI) to a real registry with
 * Bearer auth and anonymous pulls (as ghcr.io serves public images), pulled by the provider's
 * `prepare` into a byte-identical bundle and cloned; and a bundle Tart already has in its own
 * cache is used without downloading it again. Booting needs Virtualization.framework (macOS).
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Deadline } from '../../src/shared/deadline.js';
import { createVzProvider, type VzImage } from '../../src/vm/vz/provider.js';
import { GUEST_HOST_KEY, TEST_SESSION } from '../fixtures/vz/contract-values.js';
import { startRegistry, type TestRegistry } from '../support/registry-server.js';
import { runMacvm } from '../support/run-macvm.js';
import { makeVzBundle, standInVmhost } from '../support/vz-stand-in.js';

let dir: string;
let registry: TestRegistry;
let source: string;
let reference: string;
let digest: string;
const savedTartHome = process.env.TART_HOME;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-vz-registry-'));
  registry = await startRegistry({ auth: 'token', anonymousPull: true });
  source = await makeVzBundle(join(dir, 'pusher'), 'sonoma');
  // Real content at an odd offset, zeros around it: several pieces' worth is not needed to show the bytes survive.
  const disk = Buffer.alloc(8 * 2 ** 20);
  createHash('sha512').update('macvm').digest().copy(disk, 3 * 2 ** 20 + 17);
  await writeFile(join(source, 'disk.img'), disk);
  reference = `${registry.host}/cirruslabs/macos-test:latest`;
  const pushed = await runMacvm(['image', 'push', 'sonoma', reference, '--json'], { env: { ...registry.env, MACVM_HOME: join(dir, 'pusher') } }).done;
  expect(pushed.code, pushed.stderr).toBe(0);
  digest = (JSON.parse(pushed.stdout) as { digest: string }).digest;
}, 120_000);

afterAll(async () => {
  process.env.TART_HOME = savedTartHome;
  if (savedTartHome === undefined) delete process.env.TART_HOME;
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

function vzProvider(home: string) {
  return createVzProvider({
    home,
    images: { '*': { hostKey: GUEST_HOST_KEY } },
    allowFullCopy: true,
    vmhost: standInVmhost(join(dir, 'vz-calls.log')),
    address: { leasesPath: join(dir, 'dhcpd_leases'), arpCommand: ['false'], intervalMs: 50 },
  });
}

const sha = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

describe('vz provider with a registry image (contract)', { timeout: 120_000 }, () => {
  it('contract: prepare pulls the Tart image anonymously into a byte-identical bundle, which clones like a local one', async () => {
    process.env.TART_HOME = join(dir, 'no-tart'); // Tart has nothing cached
    const home = join(dir, 'puller');
    const image = (await vzProvider(home).prepare(reference)) as VzImage;
    expect(image.bundle.startsWith(join(home, 'oci'))).toBe(true);
    expect(image.bundle.endsWith(digest)).toBe(true);
    for (const file of ['config.json', 'disk.img', 'nvram.bin']) expect(await sha(join(image.bundle, file)), file).toBe(await sha(join(source, file)));
    expect(image.name).toBe(reference);

    const clone = await vzProvider(home).clone(image, { session: TEST_SESSION, deadline: new Deadline(30_000) });
    try {
      expect(await sha(join(clone.runtimeDir, 'bundle', 'disk.img'))).toBe(await sha(join(source, 'disk.img')));
    } finally {
      await clone.destroy();
    }
    // Later uses take the cache without asking the registry again.
    const gets = registry.stats().manifestGets;
    expect(((await vzProvider(home).prepare(reference)) as VzImage).bundle).toBe(image.bundle);
    expect(registry.stats().manifestGets).toBe(gets);
  });

  it('the qemu provider refuses the Tart image on its manifest, before downloading a blob', async () => {
    const { createQemuProvider } = await import('../../src/vm/qemu/provider.js');
    const blobGets = registry.stats().blobGets;
    const error = await createQemuProvider({ home: join(dir, 'qemu-home') }).prepare(reference).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'MACVM_IMAGE_FORMAT_UNSUPPORTED', message: expect.stringMatching(/Tart .*image; this provider boots a macvm qemu image/) });
    expect(registry.stats().blobGets).toBe(blobGets);
  });

  it("contract: a bundle Tart already pulled (its cache layout, ~/.tart/cache/OCIs) is used, and no blob is downloaded", async () => {
    const tartHome = join(dir, 'tart-home');
    const [host, port] = registry.host.split(':');
    const cached = join(tartHome, 'cache', 'OCIs', `${host}%3A${port}`, 'cirruslabs', 'macos-test', digest);
    await mkdir(cached, { recursive: true });
    await cp(source, cached, { recursive: true });
    process.env.TART_HOME = tartHome;
    const blobGets = registry.stats().blobGets;
    const image = (await vzProvider(join(dir, 'with-tart')).prepare(reference)) as VzImage;
    expect(image.bundle).toBe(cached);
    expect(registry.stats().blobGets).toBe(blobGets);
  });
});
