import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { derivedImage, type LayerFiles } from '../../src/vm/qemu/derived-image.js';
import { toolSearchPath } from '../../src/vm/qemu/image/host-tools.js';

// A derived image is made on the host with qemu-img and debugfs, no VM: here from a small
// parent image made the same way the image build makes one (mkfs.ext4 -d, qemu-img convert).
const home = mkdtempSync(join(tmpdir(), 'macvm-derived-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const env = { ...process.env, PATH: toolSearchPath().join(':') };
const run = (file: string, args: string[]) => execFileSync(file, args, { env, encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'] });

function makeParent(name: string): string {
  const dir = join(home, 'images', name);
  mkdirSync(dir, { recursive: true });
  const rootfs = join(home, `${name}-rootfs`);
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  writeFileSync(join(rootfs, 'etc', 'hostname'), 'parent\n');
  run('mkfs.ext4', ['-q', '-F', '-d', rootfs, join(home, `${name}.raw`), '32M']);
  run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', join(home, `${name}.raw`), join(dir, 'disk.qcow2')]);
  writeFileSync(join(dir, 'id_ed25519'), 'key', { mode: 0o600 });
  writeFileSync(join(dir, 'image.json'), JSON.stringify({
    schema: 1, name, os: 'linux', arch: 'x86_64', createdAt: new Date().toISOString(), disk: 'disk.qcow2', kernel: 'vmlinuz',
    machine: 'q35', displayMachine: 'q35', ssh: { user: 'root', privateKey: 'id_ed25519', hostKey: 'ssh-ed25519 AAAA', port: 22 }, facts: {},
  }));
  return dir;
}

/** A file's bytes as the derived image's guest sees them. */
function guestFile(imageDir: string, path: string): { bytes: Buffer; stat: string } {
  const raw = join(home, 'check.raw');
  run('qemu-img', ['convert', '-q', '-U', '-O', 'raw', join(imageDir, 'disk.qcow2'), raw]);
  try {
    return { bytes: Buffer.from(run('debugfs', ['-R', `cat ${path}`, raw]), 'latin1'), stat: run('debugfs', ['-R', `stat ${path}`, raw]) };
  } finally {
    rmSync(raw, { force: true });
  }
}

describe('derived image: a parent image plus files, as a cached qcow2 layer', () => {
  const parentDir = makeParent('parent');
  const tool = join(home, 'tool');
  const lib = join(home, 'libthing.so.1');
  writeFileSync(tool, Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff)));
  writeFileSync(lib, 'a library\n');
  const layer = (identity: string): LayerFiles => ({
    tag: 'tool-1',
    guestDir: '/opt/macvm/tool-1',
    files: [{ hostPath: lib, relativePath: 'lib/libthing.so.1', mode: 0o644 }, { hostPath: tool, relativePath: 'tool', mode: 0o755 }],
    identity,
  });

  it('is built once, holds the files root-owned with their modes, and its disk is a layer on the parent base', async () => {
    const first = await derivedImage('parent', layer('a'), { home });
    expect(first.built).toBe(true);
    expect(first.name).toMatch(/^parent\.tool-1-[0-9a-f]{12}$/);
    const dir = join(home, 'images', first.name);
    const info = JSON.parse(run('qemu-img', ['info', '-U', '--output=json', join(dir, 'disk.qcow2')])) as { 'backing-filename'?: string };
    expect(info['backing-filename']).toBe(join(parentDir, 'disk.qcow2'));
    const manifest = JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8')) as { disk: string; kernel: string; ssh: { privateKey: string }; facts: Record<string, string> };
    expect(manifest).toMatchObject({ disk: 'disk.qcow2', kernel: join(parentDir, 'vmlinuz'), ssh: { privateKey: join(parentDir, 'id_ed25519') } });
    expect(manifest.facts.derivedFrom).toBe('parent');

    const file = guestFile(dir, '/opt/macvm/tool-1/tool');
    expect(file.bytes.equals(readFileSync(tool))).toBe(true);
    expect(file.stat).toMatch(/Mode:\s+0755/);
    expect(file.stat).toMatch(/User:\s+0\s+Group:\s+0/);
    expect(guestFile(dir, '/opt/macvm/tool-1/lib/libthing.so.1').bytes.toString()).toBe('a library\n');
    expect(guestFile(dir, '/etc/hostname').bytes.toString()).toBe('parent\n'); // the parent's files are still there

    const again = await derivedImage('parent', layer('a'), { home });
    expect(again).toEqual({ name: first.name, built: false });
  });

  it('other files give another image and the stale one goes; no temp dir or lock is left', async () => {
    const before = await derivedImage('parent', layer('a'), { home });
    const after = await derivedImage('parent', layer('b'), { home });
    expect(after.built).toBe(true);
    expect(after.name).not.toBe(before.name);
    const entries = readdirSync(join(home, 'images'));
    expect(entries.sort()).toEqual(['parent', after.name].sort());
  });

  it('a killed build\'s temp dir is removed by the next build', async () => {
    const current = await derivedImage('parent', layer('c'), { home });
    const leftover = join(home, 'images', `.${current.name}.building-deadbeef`);
    mkdirSync(leftover);
    rmSync(join(home, 'images', current.name), { recursive: true });
    expect((await derivedImage('parent', layer('c'), { home })).built).toBe(true);
    expect(readdirSync(join(home, 'images')).filter((e) => e.includes('.building-'))).toEqual([]);
  });
});
