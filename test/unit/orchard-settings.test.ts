import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/runner/config.js';
import { parseSimpleYaml, readOrchardContexts } from '../../src/vm/orchard/orchard-config-file.js';
import { OrchardClient } from '../../src/vm/orchard/client.js';
import { createOrchardProvider, vmName } from '../../src/vm/orchard/provider.js';
import { certificateFingerprint } from '../../src/vm/orchard/certificate.js';
import { normaliseControllerAddress, orchardConfigured, resolveController } from '../../src/vm/orchard/settings.js';
import { loadProvider } from '../../src/vm/registry.js';
import { macvmErrorOf } from '../support/macvm-error.js';

const run = promisify(execFile);
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEu0fQnE6t1bB1yHc2ZbcTg3DXXd1tZ9m7G9bV0Tn5pE';
const host = { platform: 'linux' as const, arch: 'x64', cpus: 8, totalMemoryBytes: 32 * 2 ** 30 };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-orchard-settings-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An Orchard CLI config as `orchard context create` writes it (gopkg.in/yaml.v3, 4-space indents). */
async function writeOrchardYml(text: string): Promise<NodeJS.ProcessEnv> {
  await mkdir(join(dir, '.orchard'), { recursive: true });
  await writeFile(join(dir, '.orchard', 'orchard.yml'), text, { mode: 0o600 });
  return { ORCHARD_HOME: dir };
}

async function selfSignedCertificate(): Promise<string> {
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=orchard-controller', '-addext', 'subjectAltName=DNS:orchard-controller,DNS:other-name', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  return readFile(join(dir, 'cert.pem'), 'utf8');
}

describe('orchard settings', () => {
  it('normalises the controller address as `orchard context create` does: https and port 6120 by default', () => {
    expect(normaliseControllerAddress('orchard.example')).toBe('https://orchard.example:6120');
    expect(normaliseControllerAddress('orchard.example:7000')).toBe('https://orchard.example:7000');
    expect(normaliseControllerAddress('https://orchard.example')).toBe('https://orchard.example:6120');
    expect(normaliseControllerAddress('http://127.0.0.1:6120/')).toBe('http://127.0.0.1:6120');
    expect(normaliseControllerAddress('https://proxy.example:443/orchard/')).toBe('https://proxy.example:443/orchard');
    expect(() => normaliseControllerAddress('https://ci:secret@orchard.example')).toThrow(/must not carry credentials/);
  });

  it('takes ORCHARD_URL as is and lets ORCHARD_SERVICE_ACCOUNT_* override the config, as Orchard\'s CLI does', async () => {
    const env = { ORCHARD_HOME: dir, ORCHARD_URL: 'https://ci-orchard.example', ORCHARD_SERVICE_ACCOUNT_NAME: 'ci', ORCHARD_SERVICE_ACCOUNT_TOKEN: 'env-token' };
    const target = await resolveController({ controller: 'orchard.example', serviceAccount: { name: 'me', token: 'config-token' } }, { env });
    expect(target).toMatchObject({ url: 'https://ci-orchard.example', serviceAccount: { name: 'ci', token: 'env-token' } });
    expect(target.origin).toEqual({ url: 'ORCHARD_URL', serviceAccount: 'ORCHARD_SERVICE_ACCOUNT_NAME/ORCHARD_SERVICE_ACCOUNT_TOKEN', certificate: undefined });
    // Only the token from the environment: the name comes from the config.
    const tokenOnly = await resolveController({ controller: 'orchard.example', serviceAccount: { name: 'me', token: 'config-token' } }, { env: { ORCHARD_HOME: dir, ORCHARD_SERVICE_ACCOUNT_TOKEN: 'env-token' } });
    expect(tokenOnly.serviceAccount).toEqual({ name: 'me', token: 'env-token' });
    // Empty variables count as unset.
    const empty = await resolveController({ controller: 'orchard.example' }, { env: { ORCHARD_HOME: dir, ORCHARD_URL: '', ORCHARD_SERVICE_ACCOUNT_NAME: ' ' } });
    expect(empty).toMatchObject({ url: 'https://orchard.example:6120', serviceAccount: undefined });

    const half = await macvmErrorOf(resolveController({ controller: 'orchard.example' }, { env: { ORCHARD_HOME: dir, ORCHARD_SERVICE_ACCOUNT_NAME: 'ci' } }));
    expect(half).toMatchObject({ code: 'MACVM_CONFIG_INVALID', details: { key: 'ORCHARD_SERVICE_ACCOUNT_TOKEN' } });
    const scheme = await macvmErrorOf(resolveController({}, { env: { ORCHARD_HOME: dir, ORCHARD_URL: 'orchard.example:6120' } }));
    expect(scheme.message).toMatch(/ORCHARD_URL must be an http:\/\/ or https:\/\/ URL/);
  });

  it('reads an Orchard CLI context — named, or the default one when nothing else names a controller', async () => {
    const pem = await selfSignedCertificate();
    const env = await writeOrchardYml(
      [
        'default-context: prod',
        'contexts:',
        '    prod:',
        '        url: https://orchard.example:6120',
        `        certificate: ${Buffer.from(pem).toString('base64')}`,
        '        serviceAccountName: ci',
        '        serviceAccountToken: ctx-token # a comment',
        "    'dev box':",
        '        url: "http://127.0.0.1:6120"',
        '',
      ].join('\n'),
    );
    const byDefault = await resolveController({}, { env });
    expect(byDefault).toMatchObject({ url: 'https://orchard.example:6120', serviceAccount: { name: 'ci', token: 'ctx-token' }, certificatePem: pem, serverName: 'orchard-controller', context: 'prod' });
    expect(byDefault.origin.url).toMatch(/^Orchard context "prod" \(.*orchard\.yml\)$/);
    expect(await resolveController({ context: 'dev box' }, { env })).toMatchObject({ url: 'http://127.0.0.1:6120', serviceAccount: undefined, context: 'dev box' });
    // A controller in the config means no context is read.
    expect(await resolveController({ controller: 'other.example' }, { env })).toMatchObject({ url: 'https://other.example:6120', serviceAccount: undefined, context: undefined });

    const unknown = await macvmErrorOf(resolveController({ context: 'staging' }, { env }));
    expect(unknown).toMatchObject({ code: 'MACVM_CONFIG_INVALID', details: { key: 'orchard.context' } });
    expect(unknown.message).toMatch(/Known contexts: prod, dev box/);
    expect(certificateFingerprint(pem)).toMatch(/^([0-9A-F]{2} ){31}[0-9A-F]{2}$/);
  });

  it('says which key is missing or wrong, never echoing a token', async () => {
    const env = { ORCHARD_HOME: dir };
    const none = await macvmErrorOf(resolveController({}, { env }));
    expect(none).toMatchObject({ code: 'MACVM_CONFIG_INVALID', details: { key: 'orchard.controller' } });
    expect(none.message).toMatch(/neither ORCHARD_URL nor an Orchard CLI context/);
    const typo = await macvmErrorOf(resolveController({ controler: 'x' } as never, { env }));
    expect(typo.message).toMatch(/^orchard\.controler is not a known key/);
    const badToken = await macvmErrorOf(resolveController({ controller: 'x.example', serviceAccount: { name: 'ci', token: '' } }, { env }));
    expect(badToken.details).toEqual({ key: 'orchard.serviceAccount.token' });
    const pemInsteadOfPath = await macvmErrorOf(resolveController({ controller: 'x.example', certificate: '/nope/cert.pem' }, { env }));
    expect(pemInsteadOfPath.message).toMatch(/orchard\.certificate is neither PEM text nor a readable file/);
    const notPem = await macvmErrorOf(resolveController({ controller: 'x.example', certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, { env }));
    expect(notPem.message).toMatch(/orchard\.certificate is not a PEM certificate/);
    const secret = 'tok-do-not-print';
    const broken = await writeOrchardYml(`contexts:\n    a:\n        serviceAccountToken: ${secret}\n        - list item\n`);
    const yaml = await macvmErrorOf(resolveController({ context: 'a' }, { env: broken }));
    expect(yaml.message).toMatch(/orchard\.yml cannot be read: line 4/);
    expect(yaml.message).not.toContain(secret);
  });

  it('keeps the token out of what a client shows when logged or serialised', async () => {
    const token = 'tok-inspect-7a7a';
    const client = new OrchardClient(await resolveController({ controller: 'orchard.example', serviceAccount: { name: 'ci', token } }, { env: { ORCHARD_HOME: dir } }));
    expect(client.serviceAccountName).toBe('ci');
    expect(inspect(client, { depth: 10, showHidden: true })).not.toContain(token);
    expect(JSON.stringify(client)).not.toContain(token);
    expect(inspect(client)).not.toContain(Buffer.from(`ci:${token}`).toString('base64'));
  });

  it('knows when a controller is configured (doctor asks only then)', () => {
    expect(orchardConfigured(undefined, {})).toBe(false);
    expect(orchardConfigured({ headless: true }, { ORCHARD_URL: '' })).toBe(false);
    expect(orchardConfigured({ controller: 'x' }, {})).toBe(true);
    expect(orchardConfigured({ context: 'prod' }, {})).toBe(true);
    expect(orchardConfigured(undefined, { ORCHARD_URL: 'https://x:6120' })).toBe(true);
  });

  it('parses the YAML shape yaml.v3 writes, and refuses what it does not understand', async () => {
    expect(parseSimpleYaml('a: 1\nb:\n  c: "x\\"y"\n  d: \'it\'\'s\'\ne: {}\n# c\n')).toEqual({ a: '1', b: { c: 'x"y', d: "it's" }, e: {} });
    expect(() => parseSimpleYaml('a:\n  - 1\n')).toThrow(/line 2/);
    expect(await readOrchardContexts({ ORCHARD_HOME: join(dir, 'none') })).toBeUndefined();
  });

  it('names VMs macvm-<session>-<random> within Orchard\'s name rules', () => {
    expect(vmName('s-lx3k9a2-ab12cd')).toMatch(/^macvm-s-lx3k9a2-ab12cd-[0-9a-f]{8}$/);
    const odd = vmName('Weird_Session.ID/with:stuff--and-a-very-long-tail-that-goes-on-and-on');
    expect(odd).toMatch(/^[a-z0-9][a-z0-9-]*[a-z0-9]$/);
    expect(odd.length).toBeLessThanOrEqual(63);
    expect(vmName('___')).toMatch(/^macvm-[0-9a-f]{8}$/);
  });

  it('requires a pinned host key per image (or images["*"]) and takes the image from `source`', async () => {
    const p = createOrchardProvider({ controller: 'http://127.0.0.1:9', images: { sonoma: { source: 'ghcr.io/cirruslabs/macos-sonoma-base:latest' } }, env: {} });
    const missing = await macvmErrorOf(p.prepare('sonoma'));
    expect(missing).toMatchObject({ code: 'MACVM_CONFIG_INVALID', details: { key: 'images.sonoma.ssh.hostKey' } });
    expect(missing.hint).toMatch(/ssh-keyscan/);
    const bad = await macvmErrorOf(createOrchardProvider({ controller: 'http://127.0.0.1:9', images: { '*': { hostKey: 'ssh-ed25519 not-base64!' } }, env: {} }).prepare('x'));
    expect(bad.message).toMatch(/images\.x\.ssh\.hostKey is not an OpenSSH public key/);
    const notRef = await macvmErrorOf(p.prepare('has space'));
    expect(notRef.code).toBe('MACVM_BAD_ARGUMENT');
  });

  it('is loaded by loadProvider("orchard") with the settings from the config', async () => {
    const p = await loadProvider('orchard', { settings: { controller: 'http://127.0.0.1:9', images: {} } });
    expect(p.name).toBe('orchard');
  });

  it('validates the config\'s `orchard` section, naming bad keys', () => {
    const ok = resolveConfig(
      { provider: 'orchard', orchard: { controller: 'orchard.example', serviceAccount: { name: 'ci', token: 't' }, labels: { model: 'macstudio' }, resources: { 'org.cirruslabs.logical-cores': 4 }, imagePullPolicy: 'Always' }, images: { sonoma: { source: 'ghcr.io/cirruslabs/macos-sonoma-base:latest', ssh: { user: 'admin', hostKey: HOST_KEY } } } },
      { root: dir, env: {}, host },
    );
    expect(ok.providers.orchard).toMatchObject({ controller: 'orchard.example', imagePullPolicy: 'Always' });
    const problems = (raw: unknown) => {
      try {
        resolveConfig(raw, { root: dir, env: {}, host });
      } catch (error) {
        return ((error as { details: { problems: Array<{ message: string }> } }).details.problems ?? []).map((p) => p.message);
      }
      return [];
    };
    expect(problems({ orchard: { controler: 'x' } })).toEqual([expect.stringMatching(/^orchard\.controler is not a known key \(did you mean "orchard\.controller"\?\)/)]);
    expect(problems({ orchard: { serviceAccount: { name: 'ci' } } })).toEqual(['orchard.serviceAccount.token is required']);
    expect(problems({ orchard: { resources: { cores: -1 }, imagePullPolicy: 'always' } })).toEqual([
      'orchard.resources.cores must be a non-negative integer, got -1',
      'orchard.imagePullPolicy must be one of "IfNotPresent", "Always", got "always" (did you mean "Always"?)',
    ]);
  });
});
