import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupCredentials } from '../../src/oci/registry-credentials.js';
import { baseUrlFor, isLoopbackHost } from '../../src/oci/registry-http.js';

let dir: string;
let bin: string;
let env: NodeJS.ProcessEnv;

const b64 = (text: string) => Buffer.from(text).toString('base64');

async function dockerConfig(content: unknown): Promise<string> {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-oci-creds-'));
  bin = join(dir, 'bin');
  await mkdir(bin);
  // Helpers as Docker's protocol has them: host on stdin, JSON on stdout.
  const helpers: Record<string, string> = {
    echo: `read host; printf '{"ServerURL":"%s","Username":"user-for-%s","Secret":"s3cret:with:colons"}' "$host" "$host"`,
    none: `echo "credentials not found in native keychain"; exit 1`,
    broken: `echo "leaked-secret-do-not-show" >&2; echo "leaked-secret-do-not-show"; exit 3`,
    garbage: `echo "not json"`,
  };
  for (const [name, body] of Object.entries(helpers)) {
    const path = join(bin, `docker-credential-${name}`);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
  }
  env = { PATH: `${bin}:${process.env.PATH}`, HOME: join(dir, 'empty-home') };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lookupCredentials', () => {
  it('takes TART_REGISTRY_USERNAME/PASSWORD first, for every host or only TART_REGISTRY_HOSTNAME', async () => {
    const withVars = { ...env, TART_REGISTRY_USERNAME: 'u', TART_REGISTRY_PASSWORD: 'p' };
    const configPath = await dockerConfig({ auths: { 'ghcr.io': { auth: b64('docker:pw') } } });
    expect((await lookupCredentials('ghcr.io', { env: withVars, dockerConfigPath: configPath })).credentials).toMatchObject({ username: 'u', password: 'p', source: 'TART_REGISTRY_USERNAME/PASSWORD' });
    const limited = { ...withVars, TART_REGISTRY_HOSTNAME: 'registry.example:5000' };
    expect((await lookupCredentials('registry.example:5000', { env: limited, dockerConfigPath: configPath })).credentials?.username).toBe('u');
    // Another host falls through to Docker's config.
    expect((await lookupCredentials('ghcr.io', { env: limited, dockerConfigPath: configPath })).credentials?.username).toBe('docker');
    // Half the pair is no pair.
    expect((await lookupCredentials('other.example', { env: { ...env, TART_REGISTRY_USERNAME: 'u' }, dockerConfigPath: configPath })).credentials).toBeUndefined();
  });

  it("reads Docker's auths: base64 user:password (colons kept in the password), username/password, and keys with a scheme", async () => {
    const configPath = await dockerConfig({
      auths: {
        'ghcr.io': { auth: b64('alice:pa:ss') },
        'registry.example:5000': { username: 'bob', password: 'pw' },
        'https://other.example/v1/': { auth: b64('carol:x') },
        'empty.example': {},
      },
    });
    const of = async (host: string) => (await lookupCredentials(host, { env, dockerConfigPath: configPath })).credentials;
    expect(await of('ghcr.io')).toMatchObject({ username: 'alice', password: 'pa:ss' });
    expect(await of('registry.example:5000')).toMatchObject({ username: 'bob', password: 'pw' });
    expect(await of('other.example')).toMatchObject({ username: 'carol', password: 'x' });
    expect(await of('empty.example')).toBeUndefined();
    expect(await of('registry.example')).toBeUndefined();
  });

  it('runs credHelpers[host], a credHelpers pattern, then credsStore, with the host on stdin', async () => {
    const configPath = await dockerConfig({ credHelpers: { 'ghcr.io': 'echo', '.*\\.corp\\.example': 'echo' }, credsStore: 'none' });
    const of = async (host: string) => lookupCredentials(host, { env, dockerConfigPath: configPath });
    expect((await of('ghcr.io')).credentials).toEqual({ username: 'user-for-ghcr.io', password: 's3cret:with:colons', source: 'docker-credential-echo' });
    expect((await of('r1.corp.example')).credentials?.username).toBe('user-for-r1.corp.example');
    // credsStore "none" says "credentials not found": no credentials, and no problem either.
    expect(await of('quay.io')).toEqual({ problems: [] });
  }, 20_000);

  it("keeps a failing helper's reason, without its output", async () => {
    const configPath = await dockerConfig({ credHelpers: { a: 'broken', b: 'garbage', c: 'missing' } });
    const broken = await lookupCredentials('a', { env, dockerConfigPath: configPath });
    expect(broken.credentials).toBeUndefined();
    expect(broken.problems).toEqual(['docker-credential-broken get failed (exit status 3)']);
    expect(JSON.stringify(broken)).not.toContain('leaked-secret');
    expect((await lookupCredentials('b', { env, dockerConfigPath: configPath })).problems[0]).toMatch(/did not answer with JSON/);
    expect((await lookupCredentials('c', { env, dockerConfigPath: configPath })).problems[0]).toMatch(/docker-credential-missing .* is not on PATH/);
  }, 20_000);

  it('finds ~/.docker/config.json through HOME or DOCKER_CONFIG, and says when it is not JSON', async () => {
    const home = join(dir, 'home');
    await mkdir(join(home, '.docker'), { recursive: true });
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: b64('h:1') } } }));
    expect((await lookupCredentials('ghcr.io', { env: { ...env, HOME: home } })).credentials?.username).toBe('h');
    const dockerConfigDir = join(dir, 'docker-config');
    await mkdir(dockerConfigDir);
    await writeFile(join(dockerConfigDir, 'config.json'), '{ not json');
    const unreadable = await lookupCredentials('ghcr.io', { env: { ...env, HOME: home, DOCKER_CONFIG: dockerConfigDir } });
    expect(unreadable.credentials).toBeUndefined();
    expect(unreadable.problems[0]).toContain('could not be read as JSON');
    expect(await lookupCredentials('ghcr.io', { env })).toEqual({ problems: [] });
  });
});

describe('plain HTTP only for loopback', () => {
  it.each(['127.0.0.1', '127.3.2.1', 'localhost', 'LOCALHOST.', 'registry.localhost', '[::1]', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  it.each(['192.0.2.2', '10.0.0.1', '128.0.0.1', 'localhost.example', 'ghcr.io', '::2', '::ffff:10.0.0.1'])('%s is not', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
  it('picks the scheme from the host, or http for insecure', () => {
    expect(baseUrlFor('127.0.0.1:5000', false).href).toBe('http://127.0.0.1:5000/v2/');
    expect(baseUrlFor('[::1]:5000', false).href).toBe('http://[::1]:5000/v2/');
    expect(baseUrlFor('ghcr.io', false).href).toBe('https://ghcr.io/v2/');
    expect(baseUrlFor('registry.example:5000', false).href).toBe('https://registry.example:5000/v2/');
    expect(baseUrlFor('registry.example:5000', true).href).toBe('http://registry.example:5000/v2/');
  });
});
