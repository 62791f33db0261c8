import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMacvmError } from '../../errors.js';
import { normaliseHostKey } from '../credentials.js';
import { validateSshSettings } from './settings.js';

// A real key pair from the real ssh-keygen: the host key and the login key of the tests.
const dir = mkdtempSync(join(tmpdir(), 'macvm-ssh-settings-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test@host', '-f', join(dir, 'key')]);
const publicKey = readFileSync(join(dir, 'key.pub'), 'utf8').trim();
const [type, blob] = publicKey.split(' ');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = { host: 'mac-mini-3.lab', user: 'admin', privateKeyPath: join(dir, 'key'), hostKey: publicKey };

async function configError(settings: unknown) {
  try {
    await validateSshSettings(settings);
  } catch (error) {
    if (isMacvmError(error, 'MACVM_CONFIG_INVALID')) return error;
    throw error;
  }
  throw new Error('expected MACVM_CONFIG_INVALID');
}

describe('ssh provider settings', () => {
  it('fills defaults: port 22, macOS on Apple Silicon, key without its comment', async () => {
    const valid = await validateSshSettings(base);
    expect(valid).toMatchObject({ host: 'mac-mini-3.lab', port: 22, user: 'admin', os: 'macos', arch: 'aarch64', hostKey: `${type} ${blob}` });
    expect((await validateSshSettings({ ...base, os: 'linux' })).arch).toBe('x86_64');
  });

  it('refuses a missing host key and says how to get and verify one', async () => {
    const error = await configError({ ...base, hostKey: undefined, port: 2222 });
    expect(error.details.key).toBe('hostKey');
    expect(error.message).toContain('ssh-keyscan -t ed25519 -p 2222 mac-mini-3.lab');
    expect(error.message).toMatch(/fingerprint/);
  });

  it('accepts an ssh-keyscan line and drops the host name', () => {
    expect(normaliseHostKey(`[127.0.0.1]:2222 ${type} ${blob}`)).toBe(`${type} ${blob}`);
  });

  it('refuses a key whose data is cut short or of another type than its prefix', () => {
    expect(() => normaliseHostKey(`${type} ${blob!.slice(0, 6)}`)).toThrow(/not valid base64 key data|key data/);
    expect(() => normaliseHostKey(`ssh-rsa ${blob}`)).toThrow(/ssh-ed25519 key/);
    expect(() => normaliseHostKey('hello')).toThrow(/not an OpenSSH public key/);
  });

  it('names the bad key: port, user, credentials, private key path, os', async () => {
    expect((await configError({ ...base, port: 70000 })).details.key).toBe('port');
    expect((await configError({ ...base, user: '' })).details.key).toBe('user');
    expect((await configError({ ...base, privateKeyPath: undefined })).details.key).toBe('privateKeyPath');
    expect((await configError({ ...base, privateKeyPath: join(dir, 'nope') })).message).toContain(join(dir, 'nope'));
    expect((await configError({ ...base, os: 'windows' })).details.key).toBe('os');
    expect((await configError(undefined)).details.key).toBe('settings');
  });
});
