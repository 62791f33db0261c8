/**
 * A qemu image going through a registry, without the registry: the push plan (image.json
 * without the client key, plain file names, refusals) and the install of what a pull staged
 * (image.json as untrusted input, a fresh client key). Real files throughout: a real qcow2
 * from qemu-img, real keys from ssh-keygen.
 */
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { QEMU_DISK_MEDIA_TYPE, QEMU_FILE_MEDIA_TYPE, QEMU_IMAGE_MEDIA_TYPE } from '../../src/oci/image-layout.js';
import { AUTHORIZED_KEY_PARAMETER, publicKeyOfClientKey } from '../../src/vm/qemu/authorized-key.js';
import { readQemuManifest, type QemuImageManifest } from '../../src/vm/qemu/manifest.js';
import { qemuPushPlan, type QemuPushPlan } from '../../src/vm/qemu/registry-push-plan.js';
import { installPulledQemuImage, PULLED_CLIENT_KEY_FILE } from '../../src/vm/qemu/registry-install.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'macvm-registry-image-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const hostKey = () => {
  const path = join(root, `host-${Math.random().toString(36).slice(2)}`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
  return readFile(`${path}.pub`, 'utf8').then((text) => text.trim().split(/\s+/).slice(0, 2).join(' '));
};

/** A small but real qemu image dir as a build leaves it: qcow2 base, kernel files, client key, image.json. */
async function makeImage(name: string, edit: (manifest: QemuImageManifest) => void = () => {}): Promise<string> {
  const dir = join(root, 'images', name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'disk.qcow2'), '64M']);
  await writeFile(join(dir, 'vmlinuz'), Buffer.from('bzImage bytes '.repeat(100)));
  await writeFile(join(dir, 'vmlinux'), Buffer.from('vmlinux bytes '.repeat(100)));
  await writeFile(join(dir, 'initrd.img'), Buffer.from('initrd bytes '.repeat(100)));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'the-pusher', '-f', join(dir, 'id_ed25519')]);
  const manifest: QemuImageManifest = {
    schema: 1,
    name,
    os: 'linux',
    arch: 'x86_64',
    createdAt: '2026-11-30T00:00:00.000Z',
    disk: 'disk.qcow2',
    kernel: 'vmlinuz',
    headlessKernel: 'vmlinux',
    initrd: 'initrd.img',
    append: 'root=/dev/vda rw quiet',
    machine: 'q35',
    displayMachine: 'q35',
    ssh: { user: 'root', privateKey: 'id_ed25519', hostKey: await hostKey(), port: 22, authorizedKeyFrom: 'kernel-command-line' },
    readyMarker: 'MACVM-READY sshd-listening',
    facts: { recipe: '5' },
    inputs: [{ name: 'busybox-static', version: '1', architecture: 'amd64', sha256: 'a'.repeat(64) }],
  };
  edit(manifest);
  await writeFile(join(dir, 'image.json'), JSON.stringify(manifest, null, 2));
  return dir;
}

async function layerBytes(layer: QemuPushPlan['layers'][number]): Promise<Buffer> {
  const withBytes = layer as { bytes?: Uint8Array; path?: string };
  return withBytes.bytes ? Buffer.from(withBytes.bytes) : readFile(withBytes.path!);
}

/** What a pull leaves in its staging dir: each layer's bytes under its title, plus the engine's hidden files. */
async function stage(plan: QemuPushPlan, name = 'staged'): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  for (const layer of plan.layers) await writeFile(join(dir, layer.title!), await layerBytes(layer));
  await writeFile(join(dir, '.macvm-image.json'), '{}');
  return dir;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  return isMacvmError(error) ? error.code : `not a MacvmError: ${String(error)}`;
}

describe('qemuPushPlan', () => {
  it('sends image.json, the disk and the kernel files — and nowhere the client private key or its path', { timeout: 15_000 }, async () => {
    const dir = await makeImage('linux-test');
    const plan = await qemuPushPlan(dir);
    expect(plan.kind).toBe('macvm-qemu');
    expect(plan.layers.map((l) => [l.type, l.mediaType, l.title])).toEqual([
      ['file', QEMU_IMAGE_MEDIA_TYPE, 'image.json'],
      ['disk', QEMU_DISK_MEDIA_TYPE, 'disk.qcow2'],
      ['file', QEMU_FILE_MEDIA_TYPE, 'vmlinuz'],
      ['file', QEMU_FILE_MEDIA_TYPE, 'vmlinux'],
      ['file', QEMU_FILE_MEDIA_TYPE, 'initrd.img'],
    ]);
    const key = await readFile(join(dir, 'id_ed25519'));
    const keyBody = key.toString('utf8').split('\n').filter((line) => line && !line.startsWith('-----'));
    for (const layer of plan.layers) {
      const bytes = await layerBytes(layer);
      expect(bytes.includes(key)).toBe(false);
      for (const line of keyBody) expect(bytes.includes(Buffer.from(line))).toBe(false);
      expect((layer as { path?: string }).path ?? '').not.toMatch(/id_ed25519/);
    }
    const shared = JSON.parse((await layerBytes(plan.layers[0]!)).toString('utf8')) as QemuImageManifest;
    expect(shared.ssh).toEqual({ user: 'root', hostKey: expect.stringMatching(/^ssh-ed25519 /), port: 22, authorizedKeyFrom: 'kernel-command-line' });
    expect(JSON.stringify(shared)).not.toContain('id_ed25519');
    expect(JSON.stringify(shared)).not.toContain('privateKey');
  });

  it('turns absolute file paths into plain names', { timeout: 15_000 }, async () => {
    const elsewhere = join(root, 'kernels');
    await mkdir(elsewhere);
    await writeFile(join(elsewhere, 'vmlinuz-6.1'), 'a kernel from another dir');
    const dir = await makeImage('abs', (m) => (m.kernel = join(elsewhere, 'vmlinuz-6.1')));
    const plan = await qemuPushPlan(dir);
    const shared = JSON.parse((await layerBytes(plan.layers[0]!)).toString('utf8')) as QemuImageManifest;
    expect(shared.kernel).toBe('vmlinuz-6.1');
    expect(plan.layers.find((l) => l.title === 'vmlinuz-6.1')).toMatchObject({ path: join(elsewhere, 'vmlinuz-6.1') });
    expect(JSON.stringify(shared)).not.toContain(root);
  });

  it('refuses unsafe names, disk-booted images, baked-in login keys and overlays', { timeout: 20_000 }, async () => {
    const comma = await makeImage('comma');
    await copyFile(join(comma, 'vmlinuz'), join(comma, 'vm,linuz'));
    await writeFile(join(comma, 'image.json'), JSON.stringify({ ...JSON.parse(await readFile(join(comma, 'image.json'), 'utf8')), kernel: 'vm,linuz' }));
    expect(await codeOf(qemuPushPlan(comma))).toBe('MACVM_BAD_ARGUMENT');

    expect(await codeOf(qemuPushPlan(await makeImage('diskboot', (m) => (delete m.kernel, delete m.headlessKernel, delete m.initrd))))).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect(await codeOf(qemuPushPlan(await makeImage('old', (m) => delete m.ssh.authorizedKeyFrom)))).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');

    const derived = await makeImage('derived');
    const base = join(root, 'base.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    await rm(join(derived, 'disk.qcow2'));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', join(derived, 'disk.qcow2')]);
    const error = await qemuPushPlan(derived).catch((e: unknown) => e);
    expect(isMacvmError(error) && error.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect((error as Error).message).toContain(base);
  });
});

describe('installPulledQemuImage', () => {
  it('makes a fresh client key and writes image.json pointing at it, with private modes', { timeout: 20_000 }, async () => {
    const source = await makeImage('linux-test');
    const staged = await stage(await qemuPushPlan(source));
    const manifest = await installPulledQemuImage(staged);
    expect(manifest.ssh.privateKey).toBe(PULLED_CLIENT_KEY_FILE);
    const fresh = await publicKeyOfClientKey(join(staged, PULLED_CLIENT_KEY_FILE));
    expect(fresh).not.toBe(await publicKeyOfClientKey(join(source, 'id_ed25519')));
    expect((await stat(join(staged, PULLED_CLIENT_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(staged)).mode & 0o777).toBe(0o700);
    expect((await stat(join(staged, 'disk.qcow2'))).mode & 0o777).toBe(0o444);
    // What the provider reads: the same image, with this host's key.
    const read = await readQemuManifest(staged, 'linux-test');
    const original = JSON.parse(await readFile(join(source, 'image.json'), 'utf8')) as QemuImageManifest;
    expect(read).toEqual({ ...original, ssh: { ...original.ssh, privateKey: PULLED_CLIENT_KEY_FILE } });
    expect((await readdir(staged)).filter((f) => !f.startsWith('.')).sort()).toEqual(['disk.qcow2', 'id_ed25519', 'id_ed25519.pub', 'image.json', 'initrd.img', 'vmlinux', 'vmlinuz']);
    // A pull resumed after its install step had run once: the install runs again, with a new key.
    await installPulledQemuImage(staged);
    expect(await publicKeyOfClientKey(join(staged, PULLED_CLIENT_KEY_FILE))).not.toBe(fresh);
  });

  async function stagedWith(name: string, edit: (manifest: Record<string, unknown>) => void): Promise<string> {
    const staged = await stage(await qemuPushPlan(await makeImage(name)), `staged-${name}`);
    const manifest = JSON.parse(await readFile(join(staged, 'image.json'), 'utf8')) as Record<string, unknown>;
    edit(manifest);
    await writeFile(join(staged, 'image.json'), JSON.stringify(manifest));
    return staged;
  }

  it('refuses names that leave the image dir or break qemu options, and files image.json does not name', { timeout: 30_000 }, async () => {
    for (const [label, edit] of [
      ['traversal', (m: Record<string, unknown>) => (m.disk = '../../etc/passwd')],
      ['absolute', (m: Record<string, unknown>) => (m.initrd = '/etc/shadow')],
      ['comma', (m: Record<string, unknown>) => (m.kernel = 'vmlinuz,if=none')],
      ['key name', (m: Record<string, unknown>) => (m.initrd = PULLED_CLIENT_KEY_FILE)],
      ['machine', (m: Record<string, unknown>) => (m.machine = 'q35,memory-backend=x')],
      ['planted key', (m: Record<string, unknown>) => (m.append = `root=/dev/vda ${AUTHORIZED_KEY_PARAMETER}=c3NoLWVkMjU1MTkgQUFBQQ`)],
      ['host key', (m: Record<string, unknown>) => ((m.ssh as Record<string, unknown>).hostKey = 'not a key')],
    ] as const) {
      const staged = await stagedWith(label.replace(/ /g, '-'), edit);
      expect(`${label}: ${await codeOf(installPulledQemuImage(staged))}`).toBe(`${label}: MACVM_IMAGE_CORRUPT`);
      expect((await readdir(staged)).includes(PULLED_CLIENT_KEY_FILE)).toBe(false);
    }
    const stray = await stage(await qemuPushPlan(await makeImage('stray')), 'staged-stray');
    await writeFile(join(stray, 'authorized_keys'), 'ssh-ed25519 AAAA');
    expect(await codeOf(installPulledQemuImage(stray))).toBe('MACVM_IMAGE_CORRUPT');
  });

  it('refuses an image whose guest keeps a baked-in key, or that boots from its disk', { timeout: 20_000 }, async () => {
    expect(await codeOf(installPulledQemuImage(await stagedWith('baked', (m) => delete (m.ssh as Record<string, unknown>).authorizedKeyFrom)))).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect(await codeOf(installPulledQemuImage(await stagedWith('diskboot', (m) => delete m.kernel)))).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
  });

  it('refuses a disk that points at another file on this host', { timeout: 20_000 }, async () => {
    const staged = await stage(await qemuPushPlan(await makeImage('backed')), 'staged-backed');
    await chmod(join(staged, 'disk.qcow2'), 0o644);
    await rm(join(staged, 'disk.qcow2'));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/shadow', '-F', 'raw', join(staged, 'disk.qcow2'), '64M']);
    const error = await installPulledQemuImage(staged).catch((e: unknown) => e);
    expect(isMacvmError(error) && error.code).toBe('MACVM_IMAGE_CORRUPT');
    expect((error as Error).message).toContain('/etc/shadow');
  });
});
