import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { createHostKeyCheck, fingerprintSha256, keyTypeOfBlob, parseOpenSshPublicKey } from '../../src/guest/host-key.js';

const dir = mkdtempSync(join(tmpdir(), 'macvm-hostkey-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh key from the real ssh-keygen, and what ssh-keygen says its fingerprint is. */
function freshKey(name: string, type = 'ed25519'): { line: string; fingerprint: string } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `comment for ${name}`, '-f', path]);
  const line = readFileSync(`${path}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`]).toString().split(' ')[1]!;
  return { line, fingerprint };
}

describe('host keys', () => {
  const ed = freshKey('ed');
  const ecdsa = freshKey('ecdsa', 'ecdsa');
  const other = freshKey('other');

  test('parses OpenSSH lines and fingerprints them as ssh-keygen does', () => {
    for (const key of [ed, ecdsa]) {
      const parsed = parseOpenSshPublicKey(key.line);
      expect(parsed.type).toBe(key.line.split(' ')[0]);
      expect(keyTypeOfBlob(parsed.blob)).toBe(parsed.type);
      expect(fingerprintSha256(parsed.blob)).toBe(key.fingerprint);
    }
  });

  test('a known_hosts style line (host field first) is accepted', () => {
    expect(parseOpenSshPublicKey(`[127.0.0.1]:2222 ${ed.line}`).blob).toEqual(parseOpenSshPublicKey(ed.line).blob);
  });

  test.each([['garbage'], ['ssh-ed25519'], ['ssh-ed25519 !!!notbase64'], [`ssh-rsa ${ed.line.split(' ')[1]}`]])('"%s" is refused as a pinned key', (line) => {
    let caught: unknown;
    try {
      parseOpenSshPublicKey(line);
    } catch (error) {
      caught = error;
    }
    expect(isMacvmError(caught, 'MACVM_BAD_ARGUMENT')).toBe(true);
  });

  test('the pinned key is accepted, any other is refused naming both fingerprints', () => {
    const check = createHostKeyCheck('127.0.0.1:22', ed.line);
    expect(check.verify(parseOpenSshPublicKey(ed.line).blob)).toBe(true);
    expect(check.refusal).toBeUndefined();
    expect(check.verify(parseOpenSshPublicKey(other.line).blob)).toBe(false);
    expect(check.refusal?.code).toBe('MACVM_HOST_KEY_MISMATCH');
    expect(check.refusal?.message).toContain(ed.fingerprint);
    expect(check.refusal?.message).toContain(other.fingerprint);
  });

  test('with nothing pinned every key is refused unless insecureAcceptAnyHostKey is given', () => {
    const blob = parseOpenSshPublicKey(other.line).blob;
    const strict = createHostKeyCheck('h:22', undefined);
    expect(strict.verify(blob)).toBe(false);
    expect(strict.refusal?.code).toBe('MACVM_HOST_KEY_MISMATCH');
    expect(strict.refusal?.hint).toContain(other.line.split(' ').slice(0, 2).join(' '));
    expect(createHostKeyCheck('h:22', undefined, true).verify(blob)).toBe(true);
  });
});
