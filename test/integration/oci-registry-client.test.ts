/**
 * The OCI registry client against a REAL registry (Debian's docker-registry, CNCF distribution
 * 2.8) on 127.0.0.1, with no auth, Basic (htpasswd) and Bearer tokens (an issuer in this process),
 * and with faults injected by the proxy in front of it. Also checked against a real client,
 * skopeo, both ways.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, RegistryClient, sha256Digest, type OciManifest } from '../../src/oci/registry-client.js';
import { macvmErrorOf } from '../support/macvm-error.js';
import { startRegistry, type TestRegistry } from '../support/registry-server.js';

const run = promisify(execFile);

interface PushedImage {
  layer: Buffer;
  streamed: Buffer;
  config: Buffer;
  manifestBytes: Buffer;
  manifestDigest: string;
  manifest: OciManifest;
}

const descriptor = (mediaType: string, bytes: Buffer) => ({ mediaType, size: bytes.length, digest: sha256Digest(bytes) });

/** A little image: a config, a layer pushed from a Buffer and one pushed as a stream, and its manifest under `tag`. */
async function pushImage(client: RegistryClient, tag: string): Promise<PushedImage> {
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'darwin', note: randomBytes(8).toString('hex') }));
  const layer = randomBytes(300_000);
  const streamed = randomBytes(3 * 1024 * 1024 + 17);
  for (const blob of [config, layer]) {
    expect(await client.blobExists(sha256Digest(blob))).toBe(false);
    await client.pushBlob(sha256Digest(blob), blob.length, blob);
    expect(await client.blobExists(sha256Digest(blob))).toBe(true);
  }
  await client.pushBlob(sha256Digest(streamed), streamed.length, async function* chunks() {
    for (let offset = 0; offset < streamed.length; offset += 64 * 1024) yield streamed.subarray(offset, offset + 64 * 1024);
  });
  expect(await client.blobExists(sha256Digest(streamed))).toBe(true);
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: descriptor('application/vnd.oci.image.config.v1+json', config),
    layers: [descriptor('application/vnd.cirruslabs.tart.config.v1', layer), { ...descriptor('application/vnd.cirruslabs.tart.disk.v2', streamed), annotations: { 'org.cirruslabs.tart.uncompressed-size': '123' } }],
    annotations: { 'org.cirruslabs.tart.uncompressed-disk-size': '456' },
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = await client.putManifest(tag, manifestBytes, OCI_MANIFEST_MEDIA_TYPE);
  expect(manifestDigest).toBe(sha256Digest(manifestBytes));
  return { layer, streamed, config, manifestBytes, manifestDigest, manifest };
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Reads everything back byte for byte: the manifest by tag and by digest, every blob, and a blob's tail by Range. */
async function expectReadBack(client: RegistryClient, tag: string, image: PushedImage): Promise<void> {
  const byTag = await client.getManifest(tag);
  expect(byTag.bytes.equals(image.manifestBytes)).toBe(true);
  expect(byTag.digest).toBe(image.manifestDigest);
  expect(byTag.mediaType).toBe(OCI_MANIFEST_MEDIA_TYPE);
  expect(byTag.manifest).toEqual(image.manifest);
  expect((await client.getManifest(image.manifestDigest)).bytes.equals(image.manifestBytes)).toBe(true);
  for (const blob of [image.config, image.layer, image.streamed]) {
    const pulled = await client.pullBlob(sha256Digest(blob));
    expect(pulled.start).toBe(0);
    expect(pulled.size).toBe(blob.length);
    expect((await collect(pulled.body)).equals(blob)).toBe(true);
  }
  const tail = await client.pullBlob(sha256Digest(image.streamed), { start: 1_000_001 });
  expect(tail.start).toBe(1_000_001);
  expect(tail.size).toBe(image.streamed.length);
  expect((await collect(tail.body)).equals(image.streamed.subarray(1_000_001))).toBe(true);
}

describe('registry without auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'none' });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('pushes a blob from a Buffer and from a stream, and a manifest, and reads them back byte for byte (with a Range resume)', async () => {
    const client = new RegistryClient(registry.host, 'team/plain', { env: registry.anonymousEnv });
    const image = await pushImage(client, 'v1');
    await expectReadBack(client, 'v1', image);
    const ranged = registry.stats().requests.filter((r) => r.range);
    expect(ranged).toEqual([expect.objectContaining({ method: 'GET', range: 'bytes=1000001-', status: 206 })]);
    expect(registry.stats().requests.every((r) => r.auth === undefined)).toBe(true);
  });

  it('says which reference is missing, and refuses an image index', async () => {
    const client = new RegistryClient(registry.host, 'team/plain', { env: registry.anonymousEnv });
    const missing = await macvmErrorOf(client.getManifest('no-such-tag'));
    expect(missing.code).toBe('MACVM_IMAGE_NOT_FOUND');
    expect(missing.message).toContain(`${registry.host}/team/plain:no-such-tag`);
    const missingBlob = await macvmErrorOf(client.pullBlob(sha256Digest(Buffer.from('never pushed'))));
    expect(missingBlob.code).toBe('MACVM_IMAGE_NOT_FOUND');

    const image = await pushImage(new RegistryClient(registry.host, 'team/multi', { env: registry.anonymousEnv }), 'single');
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX_MEDIA_TYPE,
        manifests: [{ mediaType: OCI_MANIFEST_MEDIA_TYPE, size: image.manifestBytes.length, digest: image.manifestDigest, platform: { os: 'darwin', architecture: 'arm64' } }],
      }),
    );
    const multi = new RegistryClient(registry.host, 'team/multi', { env: registry.anonymousEnv });
    await multi.putManifest('all', index, OCI_INDEX_MEDIA_TYPE);
    const refused = await macvmErrorOf(multi.getManifest('all'));
    expect(refused.code).toBe('MACVM_IMAGE_FORMAT_UNSUPPORTED');
    expect(refused.message).toContain(`darwin/arm64 ${image.manifestDigest}`);
  });

  it('refuses bytes that do not match the digest or size given to pushBlob, and completes no upload', async () => {
    const client = new RegistryClient(registry.host, 'team/plain', { env: registry.anonymousEnv });
    const bytes = randomBytes(100_000);
    const wrongDigest = sha256Digest(Buffer.from('something else'));
    expect((await macvmErrorOf(client.pushBlob(wrongDigest, bytes.length, bytes))).code).toBe('MACVM_BAD_ARGUMENT');
    const streamed = await macvmErrorOf(
      client.pushBlob(wrongDigest, bytes.length, async function* once() {
        yield bytes.subarray(0, 50_000);
        yield bytes.subarray(50_000);
      }),
    );
    expect(streamed.code).toBe('MACVM_BAD_ARGUMENT');
    expect(streamed.message).toContain(sha256Digest(bytes));
    expect(await client.blobExists(wrongDigest)).toBe(false);
    expect(await client.blobExists(sha256Digest(bytes))).toBe(false);
  });

  it('stops a pull when its signal aborts, before the request or midway through the body', async () => {
    const client = new RegistryClient(registry.host, 'team/plain', { env: registry.anonymousEnv });
    const blob = randomBytes(4 * 1024 * 1024);
    await client.pushBlob(sha256Digest(blob), blob.length, blob);
    await expect(client.pullBlob(sha256Digest(blob), { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    const controller = new AbortController();
    const { body } = await client.pullBlob(sha256Digest(blob), { signal: controller.signal });
    let received = 0;
    await expect(
      (async () => {
        for await (const chunk of body) {
          received += chunk.length;
          controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(received).toBeLessThan(blob.length);
  });

  describe('with faults injected', () => {
    it('a manifest fetched by digest whose bytes do not match → MACVM_IMAGE_CORRUPT', async () => {
      const client = new RegistryClient(registry.host, 'team/faults', { env: registry.anonymousEnv });
      const image = await pushImage(client, 'v1');
      registry.injectFault({ method: 'GET', path: /\/manifests\/sha256:/, fault: { kind: 'corrupt', at: 40 } });
      const corrupt = await macvmErrorOf(client.getManifest(image.manifestDigest));
      expect(corrupt.code).toBe('MACVM_IMAGE_CORRUPT');
      expect(corrupt.message).toContain(image.manifestDigest);
      // By tag, the registry's Docker-Content-Digest catches it too.
      registry.injectFault({ method: 'GET', path: /\/manifests\/v1$/, fault: { kind: 'corrupt', at: 40 } });
      expect((await macvmErrorOf(client.getManifest('v1'))).code).toBe('MACVM_IMAGE_CORRUPT');
      expect((await client.getManifest(image.manifestDigest)).bytes.equals(image.manifestBytes)).toBe(true);
    });

    it('a blob download cut midway throws from the body; a Range pull from there gives the rest', async () => {
      const client = new RegistryClient(registry.host, 'team/faults', { env: registry.anonymousEnv });
      const blob = randomBytes(2 * 1024 * 1024);
      await client.pushBlob(sha256Digest(blob), blob.length, blob);
      registry.injectFault({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'cut', afterBytes: 700_000 } });
      const first = await client.pullBlob(sha256Digest(blob));
      const kept: Buffer[] = [];
      const cut = await macvmErrorOf(async () => {
        for await (const chunk of first.body) kept.push(chunk);
      });
      expect(cut.code).toBe('MACVM_REGISTRY_ERROR');
      const have = Buffer.concat(kept);
      expect(have.length).toBeLessThanOrEqual(700_000);
      expect(have.equals(blob.subarray(0, have.length))).toBe(true);
      expect(cut.message).toContain(`after ${have.length} bytes`);
      const rest = await client.pullBlob(sha256Digest(blob), { start: have.length });
      expect(rest.start).toBe(have.length);
      expect(Buffer.concat([have, await collect(rest.body)]).equals(blob)).toBe(true);
    });

    it('retries a 503 and a dropped connection, but gives up on a registry that keeps failing', async () => {
      const client = new RegistryClient(registry.host, 'team/faults', { env: registry.anonymousEnv });
      const image = await pushImage(client, 'retry');
      registry.injectFault({ method: 'GET', path: /\/manifests\/retry$/, fault: { kind: 'status', status: 503 }, times: 2 });
      registry.injectFault({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'cut', afterBytes: 0 } });
      expect((await client.getManifest('retry')).digest).toBe(image.manifestDigest);
      expect((await collect((await client.pullBlob(sha256Digest(image.layer))).body)).equals(image.layer)).toBe(true);

      registry.injectFault({ method: 'GET', path: /\/manifests\/retry$/, fault: { kind: 'status', status: 502 }, times: Infinity });
      const before = registry.stats().manifestGets;
      const failing = await macvmErrorOf(client.getManifest('retry'));
      registry.clearFaults();
      expect(failing.code).toBe('MACVM_REGISTRY_ERROR');
      expect(failing.message).toContain(registry.host);
      expect(failing.message).toContain('HTTP 502');
      expect(registry.stats().manifestGets - before).toBe(5);
    });

    it('follows a blob redirect to another host without our Authorization', async () => {
      // A Basic-auth registry, so there is an Authorization header to leak.
      const basicRegistry = await startRegistry({ auth: 'basic' });
      const storage = await startObjectStorage();
      try {
        const client = new RegistryClient(basicRegistry.host, 'team/redirect', { env: basicRegistry.env });
        await client.pushBlob(sha256Digest(storage.bytes), storage.bytes.length, storage.bytes);
        basicRegistry.injectFault({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'redirect', location: `${storage.url}/bucket/blob?X-Signature=abc` } });
        const pulled = await client.pullBlob(sha256Digest(storage.bytes));
        expect((await collect(pulled.body)).equals(storage.bytes)).toBe(true);
        expect(storage.requests).toHaveLength(1);
        expect(storage.requests[0]!.authorization).toBeUndefined();
        // The registry itself did get credentials for that GET.
        expect(basicRegistry.stats().requests.filter((r) => r.fault === 'redirect')).toEqual([expect.objectContaining({ auth: 'basic' })]);
      } finally {
        await storage.stop();
        await basicRegistry.stop();
      }
    });
  });
});

describe('registry with Basic auth (htpasswd)', () => {
  let registry: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'basic' });
    dir = await mkdtemp(join(tmpdir(), 'macvm-oci-basic-'));
  });
  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pushes and reads back with TART_REGISTRY_USERNAME/PASSWORD', async () => {
    const client = new RegistryClient(registry.host, 'team/basic', { env: registry.env });
    const image = await pushImage(client, 'v1');
    await expectReadBack(client, 'v1', image);
    expect(registry.stats().requests.filter((r) => r.status === 401).length).toBeGreaterThan(0);
  });

  it('a wrong password → MACVM_REGISTRY_AUTH_FAILED, and the password is nowhere in the error', async () => {
    const wrongPassword = `wrong-${randomBytes(6).toString('hex')}`;
    const client = new RegistryClient(registry.host, 'team/basic', { env: { ...registry.env, TART_REGISTRY_PASSWORD: wrongPassword } });
    const error = await macvmErrorOf(client.getManifest('v1'));
    expect(error.code).toBe('MACVM_REGISTRY_AUTH_FAILED');
    expect(error.message).toContain(registry.username!);
    expect(error.hint).toMatch(/TART_REGISTRY_USERNAME.*TART_REGISTRY_PASSWORD.*docker login.*~\/\.docker\/config\.json/s);
    const everything = JSON.stringify({ ...error.toJSON(), stack: error.stack, cause: String(error.cause) });
    expect(everything).not.toContain(wrongPassword);
    expect(everything).not.toContain(Buffer.from(`${registry.username}:${wrongPassword}`).toString('base64'));
  });

  it('no credentials → MACVM_REGISTRY_AUTH_FAILED that says none were found', async () => {
    const client = new RegistryClient(registry.host, 'team/basic', { env: registry.anonymousEnv });
    const error = await macvmErrorOf(client.getManifest('v1'));
    expect(error.code).toBe('MACVM_REGISTRY_AUTH_FAILED');
    expect(error.message).toMatch(/requires credentials .* none were found/);
  });

  it("takes credentials from a docker config.json's auths", async () => {
    const configPath = join(dir, 'auths.json');
    await writeFile(configPath, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${registry.username}:${registry.password}`).toString('base64') } } }));
    const client = new RegistryClient(registry.host, 'team/basic', { env: registry.anonymousEnv, dockerConfigPath: configPath });
    expect((await client.getManifest('v1')).manifest.layers).toHaveLength(2);
  });

  it('takes credentials from a credHelpers program on PATH (docker-credential-<name> get)', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    const seen = join(dir, 'helper-saw-host');
    const helper = join(bin, 'docker-credential-macvmtest');
    await writeFile(
      helper,
      `#!/bin/sh\n[ "$1" = get ] || exit 2\nread host\nprintf '%s' "$host" > '${seen}'\nprintf '{"ServerURL":"%s","Username":"${registry.username}","Secret":"${registry.password}"}' "$host"\n`,
    );
    await chmod(helper, 0o755);
    const configPath = join(dir, 'helpers.json');
    await writeFile(configPath, JSON.stringify({ credHelpers: { [registry.host]: 'macvmtest' } }));
    const client = new RegistryClient(registry.host, 'team/basic', { env: { ...registry.anonymousEnv, PATH: `${bin}:${process.env.PATH}` }, dockerConfigPath: configPath });
    expect((await client.getManifest('v1')).manifest.layers).toHaveLength(2);
    expect(await readFile(seen, 'utf8')).toBe(registry.host);
  });
});

describe('registry with Bearer tokens', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token' });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('pushes and reads back with a token per access, fetched once and shared by concurrent requests', async () => {
    const client = new RegistryClient(registry.host, 'team/token', { env: registry.env });
    const image = await pushImage(client, 'v1');
    await expectReadBack(client, 'v1', image);
    // One pull token (the first HEAD) and one pull,push token (the first upload); reads then use either.
    expect(registry.stats().tokenRequests).toBe(2);
    expect(registry.stats().requests.filter((r) => r.auth === 'bearer').length).toBeGreaterThan(10);

    const fresh = new RegistryClient(registry.host, 'team/token', { env: registry.env });
    const before = registry.stats().tokenRequests;
    const blobs = await Promise.all([image.config, image.layer, image.streamed, image.layer].map(async (blob) => collect((await fresh.pullBlob(sha256Digest(blob))).body)));
    expect(blobs[2]!.equals(image.streamed)).toBe(true);
    expect(registry.stats().tokenRequests - before).toBe(1);
  });

  it('a wrong password → MACVM_REGISTRY_AUTH_FAILED at the token service, without the password', async () => {
    const wrongPassword = `wrong-${randomBytes(6).toString('hex')}`;
    const client = new RegistryClient(registry.host, 'team/token', { env: { ...registry.env, TART_REGISTRY_PASSWORD: wrongPassword } });
    const error = await macvmErrorOf(client.pullBlob(sha256Digest(Buffer.from('x'))));
    expect(error.code).toBe('MACVM_REGISTRY_AUTH_FAILED');
    expect(error.message).toContain('refused the credentials');
    expect(JSON.stringify({ ...error.toJSON(), stack: error.stack, cause: String(error.cause) })).not.toContain(wrongPassword);
  });

  it('no credentials: an anonymous token without access → MACVM_REGISTRY_AUTH_FAILED', async () => {
    const client = new RegistryClient(registry.host, 'team/token', { env: registry.anonymousEnv });
    const error = await macvmErrorOf(client.getManifest('v1'));
    expect(error.code).toBe('MACVM_REGISTRY_AUTH_FAILED');
    expect(error.message).toMatch(/without credentials, and none were found/);
    // It did ask the token service, anonymously, as Tart does for public images.
    expect(registry.stats().requests.some((r) => r.path.endsWith('/manifests/v1') && r.auth === 'bearer')).toBe(true);
  });

  it('a public image: pulls with an anonymous token, and a push still needs credentials', async () => {
    const publicRegistry = await startRegistry({ auth: 'token', anonymousPull: true });
    try {
      const image = await pushImage(new RegistryClient(publicRegistry.host, 'org/public', { env: publicRegistry.env }), 'latest');
      const anonymous = new RegistryClient(publicRegistry.host, 'org/public', { env: publicRegistry.anonymousEnv });
      await expectReadBack(anonymous, 'latest', image);
      const blob = Buffer.from('anonymous push');
      const error = await macvmErrorOf(anonymous.pushBlob(sha256Digest(blob), blob.length, blob));
      expect(error.code).toBe('MACVM_REGISTRY_AUTH_FAILED');
      expect(error.message).toContain('push to org/public');
    } finally {
      await publicRegistry.stop();
    }
  });

  it('fetches a new token once the old one expires', async () => {
    const shortLived = await startRegistry({ auth: 'token', tokenTtlSeconds: 1 });
    try {
      const client = new RegistryClient(shortLived.host, 'team/ttl', { env: shortLived.env });
      expect(await client.blobExists(sha256Digest(Buffer.from('a')))).toBe(false);
      expect(await client.blobExists(sha256Digest(Buffer.from('b')))).toBe(false);
      expect(shortLived.stats().tokenRequests).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      expect(await client.blobExists(sha256Digest(Buffer.from('c')))).toBe(false);
      expect(shortLived.stats().tokenRequests).toBe(2);
    } finally {
      await shortLived.stop();
    }
  });
});

describe('plain HTTP to a host that is not loopback', () => {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address;

  it.skipIf(!address)('is refused without insecure (HTTPS is tried, nothing is sent in the clear), and works with it', async () => {
    const registry = await startRegistry({ auth: 'none' });
    // A TCP relay on the non-loopback address to the (plain HTTP) registry.
    const relay = await startTcpRelay(address!, Number(registry.host.split(':')[1]));
    try {
      const host = `${address}:${relay.port}`;
      const secure = new RegistryClient(host, 'team/x', { env: registry.anonymousEnv });
      const refused = await macvmErrorOf(secure.getManifest('latest'));
      expect(refused.code).toBe('MACVM_REGISTRY_ERROR');
      expect(refused.hint).toMatch(/plain HTTP.*insecure/);
      // The registry never saw an HTTP request: only a TLS handshake went over the wire.
      expect(registry.stats().requests).toEqual([]);

      const insecure = new RegistryClient(host, 'team/x', { env: registry.anonymousEnv, insecure: true });
      expect((await macvmErrorOf(insecure.getManifest('latest'))).code).toBe('MACVM_IMAGE_NOT_FOUND');
      expect(registry.stats().requests.map((r) => r.path)).toEqual(['/v2/team/x/manifests/latest']);

      // A redirect from the loopback registry to plain HTTP on that host is refused too.
      const local = new RegistryClient(registry.host, 'team/x', { env: registry.anonymousEnv });
      const blob = Buffer.from('redirected');
      await local.pushBlob(sha256Digest(blob), blob.length, blob);
      registry.injectFault({ method: 'GET', path: /\/blobs\//, fault: { kind: 'redirect', location: `http://${host}/v2/team/x/blobs/${sha256Digest(blob)}` } });
      const downgrade = await macvmErrorOf(local.pullBlob(sha256Digest(blob)));
      expect(downgrade.code).toBe('MACVM_REGISTRY_ERROR');
      expect(downgrade.message).toContain('refused to use plain HTTP');
    } finally {
      await relay.stop();
      await registry.stop();
    }
  });
});

describe('speaks the protocol as a real client does: skopeo reads what we push, and we read what skopeo pushes', () => {
  let registry: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token' });
    dir = await mkdtemp(join(tmpdir(), 'macvm-oci-skopeo-'));
  });
  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const skopeo = (args: string[]) => run('skopeo', ['--insecure-policy', ...args], { env: { ...process.env, HOME: registry.env.HOME }, maxBuffer: 64 * 1024 * 1024 });

  it('skopeo inspect --raw and skopeo copy to a dir: get our manifest and blobs byte for byte', async () => {
    const client = new RegistryClient(registry.host, 'team/ours', { env: registry.env });
    const image = await pushImage(client, 'v1');
    const creds = `${registry.username}:${registry.password}`;
    const { stdout } = await skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', creds, `docker://${registry.host}/team/ours:v1`]);
    expect(Buffer.from(stdout).equals(image.manifestBytes)).toBe(true);

    const target = join(dir, 'copied');
    await skopeo(['copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${registry.host}/team/ours:v1`, `dir:${target}`]);
    expect((await readFile(join(target, 'manifest.json'))).equals(image.manifestBytes)).toBe(true);
    for (const blob of [image.config, image.layer, image.streamed]) {
      expect((await readFile(join(target, sha256Digest(blob).slice('sha256:'.length)))).equals(blob)).toBe(true);
    }
  });

  it('skopeo copy from a dir into the registry: we read its manifest and blobs byte for byte', async () => {
    const source = join(dir, 'source');
    await mkdir(source);
    const config = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBytes(500_000);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      config: descriptor('application/vnd.oci.image.config.v1+json', config),
      layers: [descriptor('application/vnd.cirruslabs.tart.disk.v2', layer)],
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2));
    await writeFile(join(source, 'version'), 'Directory Transport Version: 1.1\n');
    await writeFile(join(source, 'manifest.json'), manifestBytes);
    for (const blob of [config, layer]) await writeFile(join(source, sha256Digest(blob).slice('sha256:'.length)), blob);
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `${registry.username}:${registry.password}`, `dir:${source}`, `docker://${registry.host}/team/theirs:v1`]);

    const client = new RegistryClient(registry.host, 'team/theirs', { env: registry.env });
    const pulled = await client.getManifest('v1');
    expect(pulled.bytes.equals(manifestBytes)).toBe(true);
    expect(pulled.manifest.layers[0]?.digest).toBe(sha256Digest(layer));
    expect((await collect((await client.pullBlob(sha256Digest(layer))).body)).equals(layer)).toBe(true);
    expect((await collect((await client.pullBlob(sha256Digest(config))).body)).equals(config)).toBe(true);
    expect((await readdir(source)).length).toBe(4);
  });
});

/** A stand-in for object storage behind a registry redirect: serves fixed bytes, records the headers it got. */
async function startObjectStorage(): Promise<{ url: string; bytes: Buffer; requests: { authorization?: string }[]; stop(): Promise<void> }> {
  const bytes = randomBytes(100_000);
  const requests: { authorization?: string }[] = [];
  const server = createHttpServer((req, res) => {
    const headers: IncomingHttpHeaders = req.headers;
    requests.push(headers.authorization ? { authorization: headers.authorization } : {});
    res.writeHead(200, { 'Content-Length': String(bytes.length), 'Content-Type': 'application/octet-stream' });
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    bytes,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Relays TCP from `address`:<free port> to 127.0.0.1:`port`. */
async function startTcpRelay(address: string, port: number): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createTcpServer((incoming) => {
    const outgoing = connect(port, '127.0.0.1');
    for (const socket of [incoming, outgoing]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    incoming.pipe(outgoing).pipe(incoming);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
