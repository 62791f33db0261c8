/**
 * socketGet (the blob path of every pull) against real servers on 127.0.0.1: node:http for the
 * ordinary framings, a raw TCP server for what node:http would not send (split heads, chunk
 * extensions, trailers, bad framing), and node:https with a throwaway CA for TLS.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, type Server, type Socket, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { socketGet } from '../../src/oci/socket-get.js';

const run = promisify(execFile);
const servers: (Server | HttpServer)[] = [];
let dir: string | undefined;

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function listen<T extends Server | HttpServer>(server: T): Promise<URL> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/x/blobs/sha256:abc`);
}

/** A TCP server that answers every connection with `reply`, written in the given pieces with pauses between. */
function rawServer(pieces: (string | Buffer)[], then: 'close' | 'hang' = 'close'): Promise<URL> {
  const server = createNetServer(async (socket: Socket) => {
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('data', resolve));
    for (const piece of pieces) {
      socket.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (then === 'close') socket.end();
  });
  return listen(server);
}

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const get = (url: URL, extra: { headers?: Record<string, string>; signal?: AbortSignal; idleTimeoutMs?: number } = {}) =>
  socketGet({ url, headers: extra.headers ?? {}, signal: extra.signal, idleTimeoutMs: extra.idleTimeoutMs ?? 10_000 });

describe('socketGet', () => {
  it('reads a Content-Length body of 24 MiB byte for byte, sending our headers, and reports it complete', async () => {
    const blob = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < blob.length; i += 4096) blob.writeUInt32LE(i, i);
    let seen: Record<string, unknown> = {};
    const url = await listen(
      createHttpServer((req, res) => {
        seen = { ...req.headers, path: req.url };
        res.writeHead(200, { 'Content-Length': blob.length, 'Docker-Content-Digest': 'sha256:abc' });
        res.end(blob);
      }),
    );
    const response = await get(url, { headers: { Authorization: 'Bearer t', Range: 'bytes=0-' } });
    expect(response.status).toBe(200);
    expect(response.headers['docker-content-digest']).toBe('sha256:abc');
    const body = await readAll(response.body);
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(blob).digest('hex'));
    expect(response.body.complete).toBe(true);
    expect(seen).toMatchObject({ authorization: 'Bearer t', range: 'bytes=0-', connection: 'close', host: url.host, path: url.pathname });
  });

  it('decodes a chunked body written in many pieces by node:http', async () => {
    const parts = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000 + i * 37, i));
    const url = await listen(
      createHttpServer(async (_req, res) => {
        res.writeHead(200);
        for (const part of parts) {
          res.write(part);
          await new Promise((resolve) => setImmediate(resolve));
        }
        res.end();
      }),
    );
    const response = await get(url);
    expect(response.headers['transfer-encoding']).toBe('chunked');
    expect((await readAll(response.body)).equals(Buffer.concat(parts))).toBe(true);
    expect(response.body.complete).toBe(true);
  });

  it('gathers small body pieces (TLS-record-sized and smaller) into larger chunks, in order, and passes large ones through', async () => {
    // Chunked coding cuts the body where the server wrote: 100-byte pieces among 40 KiB ones.
    const parts = Array.from({ length: 3000 }, (_, i) => (i % 100 === 99 ? Buffer.alloc(40 * 1024, i & 255) : Buffer.alloc(100, i & 255)));
    const url = await listen(
      createHttpServer((_req, res) => {
        res.writeHead(200);
        for (const part of parts) res.write(part);
        res.end();
      }),
    );
    const response = await get(url);
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(Buffer.concat(parts))).toBe(true);
    expect(chunks.length).toBeLessThan(parts.length / 10);
    // A 40 KiB piece arrives as it was cut from the socket, not copied into a gathered chunk.
    expect(chunks.some((chunk) => chunk.length === 40 * 1024)).toBe(true);
  });

  it('takes a head split across reads, skips a 100 Continue, and decodes chunk extensions and trailers split byte by byte', async () => {
    const reply = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nX-Twice: a\r\nX-Twice: b\r\n\r\n5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n';
    const url = await rawServer([...reply], 'hang');
    const response = await get(url);
    expect(response.status).toBe(206);
    expect(response.headers['x-twice']).toBe('a, b');
    expect((await readAll(response.body)).toString()).toBe('hello, world');
    expect(response.body.complete).toBe(true);
  });

  it('reads a body that ends when the server closes, when it has no length', async () => {
    const url = await rawServer(['HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\nfirst ', 'second']);
    const response = await get(url);
    expect((await readAll(response.body)).toString()).toBe('first second');
    expect(response.body.complete).toBe(true);
  });

  it('a connection that closes before Content-Length bytes came fails the body with ECONNRESET', async () => {
    const url = await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', 'only this']);
    const response = await get(url);
    await expect(readAll(response.body)).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(response.body.complete).toBe(false);
  });

  it('refuses framing it cannot trust: a bad Content-Length, a bad chunk size, a head over 64 KiB, something not HTTP', async () => {
    await expect(get(await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello']))).rejects.toThrow(/Content-Length is "5, 6"/);
    const badChunk = await get(await rawServer(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'], 'hang'));
    await expect(readAll(badChunk.body)).rejects.toThrow(/chunk size line reads "zz"/);
    await expect(get(await rawServer([`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`], 'hang'))).rejects.toThrow(/larger than 65536 bytes/);
    await expect(get(await rawServer(['SSH-2.0-OpenSSH_9.2\r\n\r\n']))).rejects.toThrow(/not HTTP\/1.1/);
  });

  it('refuses a header value with a line break before connecting', async () => {
    let connections = 0;
    const server = createNetServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    const url = await listen(server);
    expect(() => get(url, { headers: { Range: 'bytes=0-\r\nX-Injected: 1' } })).toThrow(/line break/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(connections).toBe(0);
  });

  it('an abort midway through the body rejects the iterator with the reason and closes the connection', async () => {
    let closed = false;
    const url = await listen(
      createHttpServer((req, res) => {
        req.socket.on('close', () => (closed = true));
        res.writeHead(200, { 'Content-Length': 10 * 1024 * 1024 });
        res.write(Buffer.alloc(64 * 1024));
      }),
    );
    const controller = new AbortController();
    const response = await get(url, { signal: controller.signal });
    const reason = new Error('stop now');
    const reading = readAll(response.body);
    setTimeout(() => controller.abort(reason), 50);
    await expect(reading).rejects.toBe(reason);
    await expect.poll(() => closed).toBe(true);
  });

  it('a server that goes quiet fails with ETIMEDOUT after the idle timeout', async () => {
    const url = await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'], 'hang');
    const response = await get(url, { idleTimeoutMs: 200 });
    await expect(readAll(response.body)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  describe('over TLS', () => {
    async function httpsServer(san: string): Promise<{ url: URL; ca: string }> {
      dir = await mkdtemp(join(tmpdir(), 'macvm-socket-get-'));
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=registry', '-addext', `subjectAltName=${san}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
      const [key, cert] = await Promise.all([readFile(join(dir, 'key.pem')), readFile(join(dir, 'cert.pem'))]);
      const server = createHttpsServer({ key, cert }, (_req, res) => {
        res.writeHead(200, { 'Content-Length': 6 });
        res.end('secret');
      });
      const url = await listen(server);
      url.protocol = 'https:';
      url.hostname = 'localhost';
      return { url, ca: join(dir, 'cert.pem') };
    }

    /** socketGet in a node of its own, which trusts `ca` through NODE_EXTRA_CA_CERTS (read only at start-up). */
    async function getTrusting(ca: string, url: URL): Promise<string> {
      const script = join(dir!, 'get.mts');
      await writeFile(
        script,
        `import { socketGet } from ${JSON.stringify(join(process.cwd(), 'src/oci/socket-get.ts'))};
try {
  const response = await socketGet({ url: new URL(${JSON.stringify(url.href)}), headers: {}, idleTimeoutMs: 10000 });
  const chunks = [];
  for await (const chunk of response.body) chunks.push(chunk);
  console.log(response.status, Buffer.concat(chunks).toString());
} catch (error) { console.log('error', error.code); }`,
      );
      const { stdout } = await run(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca } });
      return stdout.trim();
    }

    it('checks the certificate: refused when its CA is not trusted, read when NODE_EXTRA_CA_CERTS names it', async () => {
      const { url, ca } = await httpsServer('DNS:localhost');
      await expect(get(url)).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY/) });
      expect(await getTrusting(ca, url)).toBe('200 secret');
    });

    it('checks the host name: a trusted certificate for another name is refused', async () => {
      const { url, ca } = await httpsServer('DNS:other.example');
      expect(await getTrusting(ca, url)).toBe('error ERR_TLS_CERT_ALTNAME_INVALID');
    });
  });
});
