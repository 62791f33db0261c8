/**
 * The client key a qemu guest lets in travels on the kernel command line at every boot: the
 * host side (encoding, reading the public half of the login key, the command line) and the
 * guest side (the rcS fragment), the latter run for real by the host's dash and busybox sh
 * against a fake /proc/cmdline.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { kernelCommandLine } from '../../src/vm/qemu/args.js';
import { AUTHORIZED_KEY_PARAMETER, authorizedKeyParameter, decodeAuthorizedKeyParameter, openSshPublicKey, publicKeyOfClientKey } from '../../src/vm/qemu/authorized-key.js';
import { AUTHORIZED_KEY_REFUSED_MARKER, authorizedKeyFromCmdline, rcS } from '../../src/vm/qemu/image/guest-files.js';

let dir: string;
const keygen = (name: string, ...args: string[]) => {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-N', '', '-C', `comment-of-${name}`, '-f', path, ...args]);
  return path;
};
const pubLine = async (path: string) => (await readFile(`${path}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-authorized-key-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the public half of the login key', () => {
  it('is read from OpenSSH private keys — ed25519, RSA, ECDSA and one with a passphrase — as ssh-keygen writes it', { timeout: 20_000 }, async () => {
    for (const [name, args] of [
      ['ed', ['-t', 'ed25519']],
      ['rsa', ['-t', 'rsa', '-b', '2048']],
      ['ecdsa', ['-t', 'ecdsa']],
    ] as const) {
      const key = keygen(name, ...args);
      expect(openSshPublicKey(await readFile(key, 'utf8'))).toBe(await pubLine(key));
    }
    const locked = join(dir, 'locked');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret phrase', '-f', locked]);
    await rm(`${locked}.pub`);
    // The public blob sits before the encrypted section: no passphrase needed, no .pub needed.
    const fromKey = await publicKeyOfClientKey(locked);
    expect(fromKey).toBe(execFileSync('ssh-keygen', ['-y', '-P', 'secret phrase', '-f', locked], { encoding: 'utf8' }).trim().split(/\s+/).slice(0, 2).join(' '));
  });

  it('comes from the .pub beside a PEM key, and a PEM key without one is refused with what to run', { timeout: 20_000 }, async () => {
    const pem = keygen('pem', '-t', 'rsa', '-b', '2048', '-m', 'PEM');
    expect(await readFile(pem, 'utf8')).toMatch(/BEGIN RSA PRIVATE KEY/);
    expect(await publicKeyOfClientKey(pem)).toBe(await pubLine(pem));
    await rm(`${pem}.pub`);
    const error = await publicKeyOfClientKey(pem).catch((e: unknown) => e);
    expect(isMacvmError(error) && error.code).toBe('MACVM_CONFIG_INVALID');
    expect((error as Error & { hint?: string }).hint).toContain(`ssh-keygen -y -f ${pem}`);
    expect(isMacvmError(await publicKeyOfClientKey(join(dir, 'absent')).catch((e: unknown) => e))).toBe(true);
  });

  it('rejects text that only looks like an OpenSSH key', () => {
    expect(openSshPublicKey('-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----')).toBeUndefined();
    expect(openSshPublicKey('not a key')).toBeUndefined();
  });
});

describe('the kernel command line', () => {
  const line = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPORKjcL9cfJL3eAd0zXtA7MYyHGlpNmGMNgYGwb1RC5';

  it('carries the key as one base64url token, last, and without the comment', () => {
    const parameter = authorizedKeyParameter(`${line} someone@somewhere`);
    expect(parameter).toMatch(new RegExp(`^${AUTHORIZED_KEY_PARAMETER.replace('.', '\\.')}=[A-Za-z0-9_-]+$`));
    expect(decodeAuthorizedKeyParameter(parameter.split('=')[1]!)).toBe(line);
    const cmdline = kernelCommandLine({ append: `root=/dev/vda ${AUTHORIZED_KEY_PARAMETER}=planted`, arch: 'x86_64', machine: 'q35', authorizedKey: line });
    expect(cmdline.split(' ').at(-1)).toBe(parameter);
    expect(kernelCommandLine({ append: 'root=/dev/vda', arch: 'x86_64', machine: 'q35' })).not.toContain(AUTHORIZED_KEY_PARAMETER);
  });

  it('refuses a key too long for the kernel to keep whole', () => {
    const huge = `ssh-rsa ${Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.alloc(1600, 1)]).toString('base64')}`;
    expect(() => kernelCommandLine({ append: 'root=/dev/vda', arch: 'x86_64', machine: 'q35', authorizedKey: huge })).toThrow(/more than the kernel's/);
  });
});

describe('the guest boot script', () => {
  const shells = ['/bin/dash', '/usr/bin/busybox'].filter((shell) => existsSync(shell));
  const clientKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFIKrw0k9T5ciqEyqGiqfFdaVc3yTg7XQ/TQ6MFbW/x';
  const bakedKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPORKjcL9cfJL3eAd0zXtA7MYyHGlpNmGMNgYGwb1RC5';

  async function boot(shell: string, cmdline: string) {
    const guest = await mkdtemp(join(dir, 'guest-'));
    const paths = { cmdline: join(guest, 'cmdline'), authorizedKeys: join(guest, 'root/.ssh/authorized_keys'), console: join(guest, 'console') };
    await mkdir(join(guest, 'root/.ssh'), { recursive: true, mode: 0o700 });
    await writeFile(paths.authorizedKeys, `${bakedKey}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAnotherOneTheImageHad\n`, { mode: 0o600 });
    await writeFile(paths.cmdline, `${cmdline}\n`);
    await writeFile(paths.console, '');
    const args = shell.endsWith('busybox') ? ['sh', '-c', authorizedKeyFromCmdline(paths)] : ['-c', authorizedKeyFromCmdline(paths)];
    execFileSync(shell, args);
    return { keys: await readFile(paths.authorizedKeys, 'utf8'), mode: (await stat(paths.authorizedKeys)).mode & 0o777, console: await readFile(paths.console, 'utf8') };
  }

  it('is part of rcS', () => {
    expect(rcS()).toContain(authorizedKeyFromCmdline());
    expect(rcS()).toContain('/proc/cmdline');
  });

  it.each(shells)('makes the command line key root\'s only authorized key (%s)', async (shell) => {
    const result = await boot(shell, `root=/dev/vda quiet ${authorizedKeyParameter(clientKey)} console=ttyS0`);
    expect(result.keys).toBe(`${clientKey}\n`);
    expect(result.mode).toBe(0o600);
    expect(result.console).toBe('');
  });

  it.each(shells)('takes the last occurrence, so the provider\'s key beats one planted in the image\'s append (%s)', async (shell) => {
    const result = await boot(shell, `${authorizedKeyParameter(bakedKey)} quiet ${authorizedKeyParameter(clientKey)}`);
    expect(result.keys).toBe(`${clientKey}\n`);
  });

  it.each(shells)('leaves no key at all for a value that is not one key line, and says so (%s)', async (shell) => {
    const twoLines = Buffer.from(`${clientKey}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlanted`).toString('base64url');
    for (const value of [twoLines, 'bm90IGEga2V5', '*']) {
      const result = await boot(shell, `quiet ${AUTHORIZED_KEY_PARAMETER}=${value}`);
      expect(result.keys).toBe('');
      expect(result.console).toContain(AUTHORIZED_KEY_REFUSED_MARKER);
    }
  });

  it.each(shells)('keeps the baked-in keys when booted without the parameter (%s)', async (shell) => {
    const result = await boot(shell, 'root=/dev/vda quiet');
    expect(result.keys.split('\n')[0]).toBe(bakedKey);
  });
});
