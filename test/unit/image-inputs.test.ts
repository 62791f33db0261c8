import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageLsCommand, inputsDigest } from '../../src/runner/commands/image.js';
import type { ImageInput, QemuImageManifest } from '../../src/vm/qemu/manifest.js';
import { readQemuManifest } from '../../src/vm/qemu/manifest.js';
import { intactImage } from '../../src/vm/qemu/image/cached-build.js';
import type { DebPackage } from '../../src/vm/qemu/image/debs.js';
import { imageInputs } from '../../src/vm/qemu/image/linux-guest.js';

// image.json records every .deb a guest was built from (name, version, architecture, sha256
// of the file), `macvm image ls` shows them, and images built before that stay readable.

const deb = (name: string, version: string, sha: string): DebPackage => ({ name, version, architecture: 'amd64', sha256: sha.repeat(64), fileName: `${name}_${version}_amd64.deb` });

function manifestOf(name: string, inputs?: ImageInput[]): QemuImageManifest {
  return {
    schema: 1,
    name,
    os: 'linux',
    arch: 'x86_64',
    createdAt: '2026-01-02T03:04:05.000Z',
    disk: 'disk.qcow2',
    kernel: 'vmlinuz',
    initrd: 'initrd.img',
    machine: 'q35',
    displayMachine: 'q35',
    ssh: { user: 'root', privateKey: 'id_ed25519', hostKey: 'ssh-ed25519 AAAA test', port: 22 },
    facts: { recipe: '4' },
    ...(inputs ? { inputs } : {}),
  };
}

async function writeImage(dir: string, manifest: QemuImageManifest): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const file of ['disk.qcow2', 'vmlinuz', 'initrd.img', 'id_ed25519']) await writeFile(join(dir, file), 'x');
  await writeFile(join(dir, 'image.json'), JSON.stringify(manifest));
}

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('image inputs', () => {
  let home: string;
  const savedHome = process.env.MACVM_HOME;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'macvm-image-inputs-'));
    process.env.MACVM_HOME = home;
  });
  afterEach(async () => {
    if (savedHome === undefined) delete process.env.MACVM_HOME;
    else process.env.MACVM_HOME = savedHome;
    await rm(home, { recursive: true, force: true });
  });

  it('records name, version, architecture and sha256 of each .deb, sorted by name', () => {
    const inputs = imageInputs([deb('zlib1g', '1:1.2.13', 'a'), deb('busybox-static', '1:1.35.0-4', 'b'), deb('libc6', '2.36-9', 'c')]);
    expect(inputs).toEqual([
      { name: 'busybox-static', version: '1:1.35.0-4', architecture: 'amd64', sha256: 'b'.repeat(64) },
      { name: 'libc6', version: '2.36-9', architecture: 'amd64', sha256: 'c'.repeat(64) },
      { name: 'zlib1g', version: '1:1.2.13', architecture: 'amd64', sha256: 'a'.repeat(64) },
    ]);
  });

  it('the digest depends on every input and not on their order', () => {
    const a = imageInputs([deb('libc6', '2.36-9', 'c'), deb('zlib1g', '1', 'a')]);
    expect(inputsDigest(a)).toMatch(/^[0-9a-f]{12}$/);
    expect(inputsDigest([...a].reverse())).toBe(inputsDigest(a));
    expect(inputsDigest(imageInputs([deb('libc6', '2.36-9', 'c'), deb('zlib1g', '2', 'a')]))).not.toBe(inputsDigest(a));
    expect(inputsDigest(imageInputs([deb('libc6', '2.36-9', 'c'), deb('zlib1g', '1', 'd')]))).not.toBe(inputsDigest(a));
  });

  it('an image.json from before inputs were recorded is still read, and still counts as built', async () => {
    const dir = join(home, 'images', 'linux-test');
    await writeImage(dir, manifestOf('linux-test'));
    expect((await readQemuManifest(dir, 'linux-test')).inputs).toBeUndefined();
    expect(await intactImage(dir, '4')).toMatchObject({ name: 'linux-test' });
  });

  it('`image ls --json` lists every input; the table shows a count and digest, or - for older images', async () => {
    const inputs = imageInputs([deb('busybox-static', '1:1.35.0-4', 'b'), deb('dropbear-bin', '2022.83-1', 'e')]);
    await writeImage(join(home, 'images', 'new'), manifestOf('new', inputs));
    await writeImage(join(home, 'images', 'old'), manifestOf('old'));

    const json = capture();
    expect(await imageLsCommand.run({ argv: ['--json'], stdout: json.stream, stderr: new PassThrough() })).toBe(0);
    const listed = JSON.parse(json.text()) as Array<{ name: string; status: string; inputs?: ImageInput[] }>;
    expect(listed.map((i) => [i.name, i.status])).toEqual([
      ['new', 'ok'],
      ['old', 'ok'],
    ]);
    expect(listed[0]!.inputs).toEqual(inputs);
    expect(listed[1]).not.toHaveProperty('inputs');

    const table = capture();
    await imageLsCommand.run({ argv: [], stdout: table.stream, stderr: new PassThrough() });
    expect(table.text()).toMatch(/^NAME\s+PROVIDER\s+OS\s+ARCH\s+DISK\s+CREATED\s+INPUTS\s+DIGEST\s+STATUS/);
    expect(table.text()).toMatch(new RegExp(`^new\\s.*\\s2 debs ${inputsDigest(inputs)}\\s+-\\s+ok$`, 'm'));
    expect(table.text()).toMatch(/^old\s.*\s-\s+-\s+ok$/m);
  });
});
