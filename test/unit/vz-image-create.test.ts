import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { imageCreateCommand } from '../../src/runner/commands/image-create.js';
import { parseTartConfig } from '../../src/vm/vz/bundle-config.js';
import { downloadResumable } from '../../src/vm/vz/download.js';
import { createMacosImage, type CreateImageOptions } from '../../src/vm/vz/image-create.js';

const root = join(import.meta.dirname, '..', '..');
const fakeAddon = join(root, 'test', 'fixtures', 'vz', 'fake-addon.cjs');

let dir: string;
let server: Server | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-image-create-'));
});
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A real HTTP server for the IPSW that honours Range, and can drop the connection midway once. */
async function serveIpsw(body: Buffer, options: { dropFirstAfter?: number } = {}): Promise<{ url: string; ranges: string[] }> {
  const ranges: string[] = [];
  let drop = options.dropFirstAfter;
  server = createServer((req, res) => {
    const range = req.headers.range;
    ranges.push(range ?? '');
    const start = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : 0;
    if (start >= body.length) {
      res.writeHead(416).end();
      return;
    }
    const slice = body.subarray(start);
    res.writeHead(range ? 206 : 200, { 'content-length': slice.length, ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    if (drop !== undefined) {
      const cut = drop;
      drop = undefined;
      res.write(slice.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}/UniversalMac_14.4.1_23E224_Restore.ipsw`, ranges };
}

function options(extra: Partial<CreateImageOptions> = {}): CreateImageOptions {
  return {
    name: 'sonoma',
    ipsw: join(dir, 'local.ipsw'),
    diskBytes: 80_000_000_000,
    home: join(dir, 'home'),
    vmhost: {
      command: process.execPath,
      args: ['--import', import.meta.resolve('tsx'), join(root, 'src', 'vm', 'vz', 'vmhost-main.ts')],
      env: { ...process.env, MACVM_VZ_ADDON: fakeAddon, MACVM_FAKE_VZ_LOG: join(dir, 'calls.log') },
    },
    ...extra,
  };
}

describe('resumable IPSW download', { timeout: 30_000 }, () => {
  it('resumes with a Range request after a dropped connection and ends with the exact bytes', async () => {
    const body = Buffer.alloc(3 * 2 ** 20, 7);
    body.write('IPSW-ish payload', 12345);
    const { url, ranges } = await serveIpsw(body, { dropFirstAfter: 2 ** 20 });
    const target = join(dir, 'x.ipsw');
    await expect(downloadResumable(url, target)).rejects.toThrow();
    const partial = (await stat(`${target}.part`)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(body.length);
    const seen: number[] = [];
    await downloadResumable(url, target, { onProgress: (p) => seen.push(p.receivedBytes / p.totalBytes!) });
    expect(ranges).toEqual(['', `bytes=${partial}-`]);
    expect(createHash('sha256').update(await readFile(target)).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(seen.at(-1)).toBe(1);
    await expect(stat(`${target}.part`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports an HTTP error as MACVM_IPSW_INVALID', async () => {
    server = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/missing.ipsw`;
    const error = await downloadResumable(url, join(dir, 'y.ipsw')).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_IPSW_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(/HTTP 404/);
  });
});

describe('macvm image create (contract: real vmhost, stand-in addon)', { timeout: 60_000 }, () => {
  it('contract: installs from a local IPSW into a Tart-format bundle with a sparse disk, reporting progress', async () => {
    await writeFile(join(dir, 'local.ipsw'), 'not really an ipsw');
    const events: Array<{ step: string; fraction?: number }> = [];
    const created = await createMacosImage(options({ cpus: 1, memoryMiB: 16384, onProgress: (e) => events.push(e) }));
    const bundle = join(dir, 'home', 'images', 'sonoma');
    expect(created).toMatchObject({ bundle, osVersion: '14.4.1', buildVersion: '23E224', cpuCount: 2, memorySize: 16384 * 2 ** 20 });
    expect((await readdir(bundle)).sort()).toEqual(['config.json', 'disk.img', 'nvram.bin']);
    const config = parseTartConfig(await readFile(join(bundle, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ os: 'darwin', cpuCountMin: 2, cpuCount: 2, memorySizeMin: 4294967296, memorySize: 16384 * 2 ** 20, diskFormat: 'raw' });
    const disk = await stat(join(bundle, 'disk.img'));
    expect(disk.size).toBe(80_000_000_000);
    expect(disk.blocks * 512).toBeLessThan(2 ** 20); // sparse
    expect(events.filter((e) => e.step.startsWith('installing')).map((e) => e.fraction)).toEqual([0, 0, 0.25, 0.5, 0.75, 1]);
    expect((await readdir(join(dir, 'home', 'images'))).filter((n) => n.startsWith('.'))).toEqual([]);
    const calls = (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n');
    expect(calls).toEqual([`loadRestoreImage ${join(dir, 'local.ipsw')}`, expect.stringMatching(/^createAuxiliaryStorage .*nvram\.bin$/), `installMacOS ${join(dir, 'local.ipsw')}`]);
    // and it refuses to overwrite without --force
    await expect(createMacosImage(options())).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT' });
  });

  it('contract: --ipsw latest downloads Apple\'s latest into MACVM_HOME/downloads first', async () => {
    const { url } = await serveIpsw(Buffer.alloc(256 * 1024, 1));
    const base = options();
    const created = await createMacosImage({ ...base, ipsw: 'latest', vmhost: { ...base.vmhost!, env: { ...base.vmhost!.env, MACVM_FAKE_VZ_LATEST_URL: url } } });
    expect(created.ipsw).toBe(join(dir, 'home', 'downloads', 'UniversalMac_14.4.1_23E224_Restore.ipsw'));
    expect((await stat(created.ipsw)).size).toBe(256 * 1024);
  });

  it('contract: a missing IPSW fails with MACVM_IPSW_INVALID and leaves no image or partial dir', async () => {
    const error = await createMacosImage(options({ ipsw: join(dir, 'nope.ipsw') })).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_IPSW_INVALID')).toBe(true);
    expect(await readdir(join(dir, 'home', 'images'))).toEqual([]);
  });
});

describe('macvm image create (CLI)', () => {
  const run = (argv: string[]) => imageCreateCommand.run({ argv, stdout: new PassThrough(), stderr: new PassThrough() });
  it('needs a name and --ipsw', async () => {
    await expect(run([])).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT' });
    await expect(run(['sonoma'])).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT', message: expect.stringMatching(/--ipsw/) });
    // A flag's bad value is a bad argument (exit 2), not a config problem.
    await expect(run(['sonoma', '--ipsw', 'latest', '--disk', 'lots'])).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT', message: expect.stringMatching(/--disk/) });
  });

  // On an Apple Silicon Mac the command goes on to download the IPSW instead.
  it.skipIf(process.platform === 'darwin' && process.arch === 'arm64')('says plainly that macOS images need an Apple Silicon Mac', async () => {
    const saved = process.env.MACVM_HOME;
    process.env.MACVM_HOME = join(dir, 'home');
    try {
      await expect(run(['sonoma', '--ipsw', 'latest'])).rejects.toMatchObject({ code: 'MACVM_PROVIDER_UNAVAILABLE' });
    } finally {
      process.env.MACVM_HOME = saved;
    }
  });
});
