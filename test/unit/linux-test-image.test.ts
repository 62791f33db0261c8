import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { BUILD_TOOLS, missingHostTools } from '../../src/vm/qemu/image/host-tools.js';
import { buildLinuxTestImage, LINUX_TEST_RECIPE } from '../../src/vm/qemu/image/build-linux-test.js';
import { cpioNewc } from '../../src/vm/qemu/image/cpio.js';
import { parseControlStanzas } from '../../src/vm/qemu/image/debs.js';
import { neededLibraries } from '../../src/vm/qemu/image/elf.js';
import { initrdInit, inittab, HOST_KEY_PATH, kernelAppend, READY_MARKER, WARM_UP_IDENT, announceReady } from '../../src/vm/qemu/image/guest-files.js';
import { normalizeModuleName } from '../../src/vm/qemu/image/kernel-modules.js';
import { withBuildLock } from '../../src/vm/qemu/image/build-lock.js';
import { decodeLz4Block, decompressLz4Legacy, hasPvhNote } from '../../src/vm/qemu/image/vmlinux.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'macvm-image-unit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('cpio newc writer', () => {
  it('writes an archive the real cpio tool lists and extracts, symlinks and device nodes included', () => {
    const archive = cpioNewc([
      { type: 'dir', path: 'bin' },
      { type: 'file', path: 'bin/hello', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
      { type: 'symlink', path: 'bin/sh', target: 'hello' },
      { type: 'dir', path: 'dev' },
      { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { type: 'file', path: 'odd', data: Buffer.from('abc') },
    ]);
    expect(archive.length % 4).toBe(0);
    const listing = execFileSync('cpio', ['-t', '-v', '--quiet'], { input: archive, encoding: 'utf8' });
    expect(listing).toMatch(/^-rwxr-xr-x .* bin\/hello$/m);
    expect(listing).toMatch(/^lrwxrwxrwx .* bin\/sh -> hello$/m);
    expect(listing).toMatch(/^crw------- .* 5, +1 .* dev\/console$/m);
    const out = join(dir, 'out');
    mkdirSync(out);
    // --no-absolute-filenames and no device creation worries: extract only the regular files.
    execFileSync('cpio', ['-i', '-d', '--quiet', 'bin/hello', 'odd'], { input: archive, cwd: out });
    expect(readFileSync(join(out, 'bin/hello'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(readFileSync(join(out, 'odd'), 'utf8')).toBe('abc');
    expect(statSync(join(out, 'bin/hello')).mode & 0o777).toBe(0o755);
  });
});

describe('ELF reader', () => {
  it('finds the same DT_NEEDED libraries as readelf on a real host binary', () => {
    const binary = '/usr/bin/ssh';
    const readelf = execFileSync('readelf', ['-d', binary], { encoding: 'utf8' });
    const expected = [...readelf.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    expect(expected.length).toBeGreaterThan(0);
    expect(neededLibraries(readFileSync(binary), binary)).toEqual(expected);
  });

  it('rejects a file that is not ELF', () => {
    expect(() => neededLibraries(Buffer.from('#!/bin/sh\n'.padEnd(80)), 'script')).toThrow(/not an ELF/);
  });
});

describe('Debian control stanzas', () => {
  it('reads Package, Version and SHA256 from real apt-cache output', () => {
    const text = execFileSync('apt-cache', ['show', '--no-all-versions', 'busybox-static', 'zlib1g'], { encoding: 'utf8' });
    const stanzas = parseControlStanzas(text);
    expect(stanzas.map((s) => s.Package)).toEqual(['busybox-static', 'zlib1g']);
    for (const stanza of stanzas) {
      expect(stanza.SHA256).toMatch(/^[0-9a-f]{64}$/);
      expect(stanza.Version).toMatch(/^(\d+:)?\d/);
      expect(stanza.Filename).toContain(`${stanza.Package}_`);
    }
  }, 60_000); // apt-cache loads its caches for seconds on a busy host
});

describe('guest files', () => {
  it('the initrd /init loads the modules in the given order, each failure reported', () => {
    const init = initrdInit(['virtio', 'virtio_mmio', 'virtio_blk']);
    const loads = [...init.matchAll(/^insmod \/lib\/modules\/(\S+)\.ko \|\| fail "insmod (\S+)"$/gm)].map((m) => [m[1], m[2]]);
    expect(loads).toEqual([['virtio', 'virtio'], ['virtio_mmio', 'virtio_mmio'], ['virtio_blk', 'virtio_blk']]);
    expect(init).toMatch(/exec switch_root \/newroot \/sbin\/init/);
  });

  it('inittab starts dropbear with the pinned host key and announces readiness', () => {
    expect(inittab()).toContain(`dropbear -F -s -p 22 -r ${HOST_KEY_PATH}`);
    expect(announceReady()).toContain(`${READY_MARKER} uptime=`);
  });

  it('the marker comes after one bounded local connection has warmed dropbear', () => {
    const script = announceReady();
    const warmUp = script.indexOf(`printf '${WARM_UP_IDENT}\\r\\n' | timeout 5 nc 127.0.0.1 22 >/dev/null 2>&1`);
    expect(warmUp).toBeGreaterThan(script.indexOf('until listening'));
    expect(warmUp).toBeLessThan(script.indexOf(READY_MARKER));
  });

  it('the kernel command line carries tsc_early_khz only when the host speed is known, never console=', () => {
    expect(kernelAppend(2_096_011)).toMatch(/ tsc_early_khz=2096011$/);
    expect(kernelAppend(undefined)).not.toMatch(/tsc_early_khz/);
    expect(kernelAppend(2_000_000)).not.toMatch(/console=/);
  });

  it('module names treat - and _ alike and drop the .ko suffix', () => {
    expect(normalizeModuleName('virtio-rng.ko')).toBe('virtio_rng');
    expect(normalizeModuleName('virtio_net')).toBe('virtio_net');
  });
});

describe('host tools', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  /** A PATH dir with stand-ins for every build tool except `absent` (only their presence is checked). */
  function pathWithout(absent: string[]): string {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const { tool } of BUILD_TOOLS) {
      if (absent.includes(tool)) continue;
      writeFileSync(join(bin, tool), '#!/bin/sh\nexit 0\n');
      chmodSync(join(bin, tool), 0o755);
    }
    return bin;
  }

  it('names each missing tool and its Debian package once', async () => {
    // Tools that live in /usr/bin on this host (sbin dirs are always searched).
    const missing = await missingHostTools({ PATH: pathWithout(['qemu-img', 'dropbearconvert', 'apt-get', 'apt-cache']) });
    expect(missing.tools.sort()).toEqual(['apt-cache', 'apt-get', 'dropbearconvert', 'qemu-img']);
    expect(missing.aptPackages.sort()).toEqual(['apt', 'dropbear-bin', 'qemu-utils']);
  });

  it('buildLinuxTestImage stops before doing anything, printing the exact apt-get line', async () => {
    process.env.PATH = pathWithout(['qemu-img', 'ssh-keygen']);
    const imageDir = join(dir, 'images', 'linux-test');
    const error = await buildLinuxTestImage({ imageDir, downloadsDir: join(dir, 'downloads') }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_HOST_TOOL_MISSING')).toBe(true);
    expect((error as Error).message).toContain('apt-get install -y --no-install-recommends qemu-utils openssh-client');
    expect(() => statSync(join(dir, 'images'))).toThrow();
  });
});

describe('build cache', () => {
  it('an intact image of the current recipe is returned untouched; a broken one is not taken as built', async () => {
    const imageDir = join(dir, 'images', 'linux-test');
    mkdirSync(imageDir, { recursive: true });
    const manifest = {
      schema: 1, name: 'linux-test', os: 'linux', arch: 'x86_64', createdAt: '2020-01-01T00:00:00.000Z',
      disk: 'disk.qcow2', kernel: 'vmlinuz', initrd: 'initrd.img', machine: 'q35', displayMachine: 'q35',
      ssh: { user: 'root', privateKey: 'id_ed25519', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIjDWUWsSnZncEr2DruDLjF2OM5/HcArK+FpzZC7H7Lm', port: 22 },
      facts: { recipe: LINUX_TEST_RECIPE },
    };
    writeFileSync(join(imageDir, 'image.json'), JSON.stringify(manifest));
    for (const file of ['disk.qcow2', 'vmlinuz', 'initrd.img', 'id_ed25519']) writeFileSync(join(imageDir, file), 'x');
    const steps: string[] = [];
    const result = await buildLinuxTestImage({ imageDir, onProgress: (p) => steps.push(p.step) });
    expect(result.createdAt).toBe(manifest.createdAt);
    expect(steps).toEqual(['cached']);

    // Remove the kernel: now it is not intact, so a build would start (and, with no tools on PATH, stop at the check).
    rmSync(join(imageDir, 'vmlinuz'));
    const savedPath = process.env.PATH;
    process.env.PATH = join(dir, 'empty');
    try {
      const error = await buildLinuxTestImage({ imageDir, onProgress: (p) => steps.push(p.step) }).catch((e: unknown) => e);
      expect(steps).toEqual(['cached', 'check host tools']);
      expect(isMacvmError(error, 'MACVM_HOST_TOOL_MISSING')).toBe(true);
    } finally {
      process.env.PATH = savedPath;
    }
  });
});

describe('LZ4 (the kernel payload format)', () => {
  // Hand-assembled per the LZ4 block format: token (literals<<4 | match-4), literals,
  // 2-byte little-endian offset; the last sequence has literals only.
  const block = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x58]);

  it('decodes literals and an overlapping back-reference', () => {
    const out = Buffer.alloc(13);
    expect(decodeLz4Block(block, out, 0)).toBe(13);
    expect(out.toString()).toBe('abcabcabcabcX');
  });

  it('decodes a legacy stream (magic, sized blocks, trailing length) and checks the length', () => {
    const word = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
    const stream = Buffer.concat([word(0x184c2102), word(block.length), block, word(block.length), block, word(26)]);
    expect(decompressLz4Legacy(stream).toString()).toBe('abcabcabcabcXabcabcabcabcX');
    const lying = Buffer.concat([word(0x184c2102), word(block.length), block, word(14)]);
    expect(() => decompressLz4Legacy(lying)).toThrow(/expected 14/);
  });

  it('refuses a match that points before the start of the output', () => {
    expect(() => decodeLz4Block(Buffer.from([0x15, 0x61, 0x09, 0x00]), Buffer.alloc(32), 0)).toThrow(/offset/);
  });

  it('finds no PVH note in a host program (only kernels have one)', () => {
    expect(hasPvhNote(readFileSync('/usr/bin/ssh'))).toBe(false);
  });
});

describe('build lock', () => {
  it('serialises two builds of one image and takes over a lock whose process is gone', async () => {
    const imageDir = join(dir, 'images', 'linux-test');
    mkdirSync(join(dir, 'images'), { recursive: true });
    // A lock left by a process that has exited: a real pid, no longer alive.
    const dead = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'images', '.linux-test.lock'), JSON.stringify({ pid: Number(dead) }));
    mkdirSync(join(dir, 'images', '.linux-test.building-1-dead'));

    const events: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = withBuildLock(imageDir, () => events.push('first waited'), async () => {
      events.push('first in');
      await held;
      events.push('first out');
    });
    await new Promise((r) => setTimeout(r, 100));
    const waits: number[] = [];
    const second = withBuildLock(imageDir, (pid) => waits.push(pid), async () => {
      events.push('second in');
    });
    await new Promise((r) => setTimeout(r, 700));
    release();
    await Promise.all([first, second]);
    expect(events).toEqual(['first in', 'first out', 'second in']);
    expect(waits).toEqual([process.pid]);
    expect(() => statSync(join(dir, 'images', '.linux-test.lock'))).toThrow();
    expect(() => statSync(join(dir, 'images', '.linux-test.building-1-dead'))).toThrow();
  });
});
