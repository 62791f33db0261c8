/**
 * The transport under the registry client: one HTTP request with node:http/https, streamed both
 * ways, over keep-alive agents shared by every client in the process (several pulls at once reuse
 * connections instead of a TLS handshake each).
 *
 * Rules kept here, so no caller can get them wrong:
 * - Plain HTTP only to a loopback host (127.0.0.0/8, ::1, localhost) or with `insecure`; anything
 *   else is HTTPS with certificate checks, redirects included (a redirect may not downgrade).
 * - Redirects (blobs are served from object storage) are followed for GET only, and the
 *   Authorization header never goes to another host.
 * - Transport failures become MACVM_REGISTRY_ERROR naming the registry and what was being done,
 *   never a URL's query (upload state, presigned signatures) and never a header value.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { MacvmError, messageOf } from '../errors.js';
import { SocketBody, socketGet } from './socket-get.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';
export type RequestBody = Buffer | (() => AsyncIterable<Uint8Array>);

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  signal?: AbortSignal;
  /** Follow redirects (GET only): blobs live in object storage on another host. */
  followRedirects?: boolean;
  /** A large body (a blob, GET only): read on a connection of its own, straight off the socket (see socket-get.ts). */
  bulk?: boolean;
  /** What is being done, for messages: "pulling blob sha256:… from 127.0.0.1:5000". */
  doing: string;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Where the answer came from (after redirects). */
  url: URL;
  /** The body, not yet read: read it, or discard() it so the connection goes back to the pool (or is closed). */
  body: IncomingMessage | SocketBody;
}

export interface TransportOptions {
  /** Allow plain HTTP to a host that is not loopback (Tart's --insecure). */
  insecure?: boolean;
  userAgent: string;
  /** Socket inactivity that counts as a stalled transfer; default 60 s. */
  idleTimeoutMs?: number;
}

const MAX_REDIRECTS = 5;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

// Free sockets in a keep-alive pool are unref'd by node, so these never keep a process alive.
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 32, maxFreeSockets: 16, timeout: DEFAULT_IDLE_TIMEOUT_MS });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 32, maxFreeSockets: 16, timeout: DEFAULT_IDLE_TIMEOUT_MS });

/** 127.0.0.0/8, ::1 (also as ::ffff:127.x), and localhost (with or without a trailing dot, and its subdomains). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) {
    // The URL parser writes an IPv6 address in its shortest form: ::1, and ::ffff:7f00:1 for ::ffff:127.0.0.1.
    const canonical = new URL(`http://[${host}]/`).hostname;
    return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
  }
  return false;
}

/** The scheme for a registry host (`name[:port]`): http only for loopback or insecure. */
export function baseUrlFor(registry: string, insecure: boolean): URL {
  const hostname = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:\d+$/, '');
  const scheme = insecure || isLoopbackHost(hostname) ? 'http' : 'https';
  return new URL(`${scheme}://${registry}/v2/`);
}

/** Sends one request (following redirects when asked); resolves once the response headers are in. */
export async function sendRequest(request: HttpRequest, options: TransportOptions): Promise<HttpResponse> {
  let url = request.url;
  let headers = { ...request.headers };
  const originHost = url.host;
  for (let redirects = 0; ; redirects += 1) {
    checkScheme(url, options, request.doing);
    const response = await sendOnce({ ...request, url, headers }, options);
    const location = response.headers.location;
    const isRedirect = [301, 302, 303, 307, 308].includes(response.status) && location;
    if (!request.followRedirects || request.method !== 'GET' || !isRedirect) return response;
    discard(response.body);
    if (redirects >= MAX_REDIRECTS) {
      throw new MacvmError('MACVM_REGISTRY_ERROR', `${request.doing}: more than ${MAX_REDIRECTS} redirects (the last to ${url.host}).`, {
        details: { host: url.host },
      });
    }
    url = new URL(location, url);
    if (url.host !== originHost) {
      // Object storage authenticates with the signed URL; our token is for the registry alone.
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
    }
  }
}

function checkScheme(url: URL, options: TransportOptions, doing: string): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && (options.insecure || isLoopbackHost(url.hostname))) return;
  throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: refused to use plain ${url.protocol.replace(':', '').toUpperCase()} to ${url.host}, which is not a loopback address.`, {
    hint: 'Registries are reached over HTTPS. Allow plain HTTP only for a registry on a network you trust: `insecure: true` (`--insecure`).',
    details: { host: url.host },
  });
}

function sendOnce(request: HttpRequest & { headers: Record<string, string> }, options: TransportOptions): Promise<HttpResponse> {
  if (request.bulk && request.method === 'GET' && request.body === undefined) return sendBulkGet(request, options);
  const { url, body, signal } = request;
  const isHttps = url.protocol === 'https:';
  const headers: Record<string, string> = { 'User-Agent': options.userAgent, ...request.headers };
  if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
  else if (body === undefined && (request.method === 'POST' || request.method === 'PUT' || request.method === 'PATCH')) headers['Content-Length'] ??= '0';

  return new Promise<HttpResponse>((resolve, reject) => {
    signal?.throwIfAborted();
    let settled = false;
    let bodyDone = body === undefined || Buffer.isBuffer(body);
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    const send = isHttps ? httpsRequest : httpRequest;
    const req: ClientRequest = send(url, {
      method: request.method,
      headers,
      agent: isHttps ? httpsAgent : httpAgent,
      signal,
    });
    req.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => {
      req.destroy(Object.assign(new Error(`no data for ${(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS) / 1000} s`), { code: 'ETIMEDOUT' }));
    });
    req.on('error', (error) => fail(signal?.aborted ? signal.reason ?? error : transportError(error, request.doing, url)));
    req.on('response', (response) => {
      if (settled) {
        response.resume();
        return;
      }
      settled = true;
      if (!bodyDone) {
        // The server answered before taking the whole body (an auth error, a refusal): this
        // connection is in no state to be reused, so it goes once the answer has been read.
        bodyDone = true;
        response.once('end', () => req.destroy());
      }
      resolve({ status: response.statusCode ?? 0, headers: response.headers, url, body: response });
    });

    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      writeStream(req, body(), () => bodyDone).then(
        () => {
          bodyDone = true;
        },
        (error: unknown) => {
          req.destroy();
          fail(error);
        },
      );
    }
  });
}

async function sendBulkGet(request: HttpRequest & { headers: Record<string, string> }, options: TransportOptions): Promise<HttpResponse> {
  const { url, signal } = request;
  try {
    const response = await socketGet({ url, headers: { 'User-Agent': options.userAgent, ...request.headers }, signal, idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS });
    return { ...response, url };
  } catch (error) {
    throw signal?.aborted ? signal.reason ?? error : transportError(error, request.doing, url);
  }
}

/** Writes an async iterable into the request, honouring back-pressure; stops early if the server already answered. */
async function writeStream(req: ClientRequest, chunks: AsyncIterable<Uint8Array>, answered: () => boolean): Promise<void> {
  for await (const chunk of chunks) {
    if (answered() || req.destroyed) return;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          req.off('drain', done);
          req.off('close', done);
          resolve();
        };
        req.on('drain', done);
        req.on('close', done);
      });
    }
  }
  if (!answered() && !req.destroyed) req.end();
}

/** Reads a whole (small) body; more than `limit` bytes is an error, so a misbehaving server cannot fill memory. */
export async function readBody(response: HttpResponse, limit: number, doing: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > limit) {
        response.body.destroy();
        throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: the answer from ${response.url.host} is larger than ${limit} bytes.`, {
          details: { host: response.url.host, status: response.status },
        });
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof MacvmError) throw error;
    throw transportError(error, doing, response.url);
  }
  return Buffer.concat(chunks);
}

/** Drains an unwanted body so the connection can go back to the pool; one of its own is closed. */
export function discard(body: IncomingMessage | SocketBody): void {
  if (body instanceof SocketBody) return body.destroy();
  body.on('error', () => {});
  body.resume();
}

/** The registry's own words from an error body ({"errors":[{"code","message"}]}): safe to show; anything else is not shown. */
export async function registryErrorText(response: HttpResponse, doing: string): Promise<string> {
  let text = '';
  try {
    text = (await readBody(response, 64 * 1024, doing)).toString('utf8');
  } catch {
    return '';
  }
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const parts = (parsed.errors ?? [])
      .slice(0, 3)
      .map((e) => [e.code, e.message].filter((v): v is string => typeof v === 'string' && v !== '').join(': '))
      .filter(Boolean);
    return parts.join('; ').slice(0, 300);
  } catch {
    return '';
  }
}

/** Network failures that may well pass on a second try. */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

export function transportError(error: unknown, doing: string, url: URL): MacvmError {
  if (error instanceof MacvmError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const tls = typeof code === 'string' && (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|UNABLE_TO/.test(code));
  const wrongProtocol = code === 'EPROTO' || /wrong version number|packet length too long/i.test(messageOf(error));
  const hint = wrongProtocol
    ? `${url.host} may speak plain HTTP, not HTTPS. Use plain HTTP only on a network you trust: \`insecure: true\` (\`--insecure\`).`
    : tls
      ? `The TLS certificate of ${url.host} was not accepted. Add its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.`
      : code === 'ENOTFOUND'
        ? `Check the registry host name in the image reference.`
        : code === 'ECONNREFUSED'
          ? `Nothing is listening at ${url.host} (tried again a few times): is the registry running, and is the port in the reference right?`
          : undefined;
  return new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: the connection to ${url.host} failed (${code ?? messageOf(error)}).`, {
    hint,
    // The cause is node's own error: it names the address and code, never a header.
    cause: error,
    details: { host: url.host, code, transient: typeof code === 'string' && TRANSIENT_CODES.has(code) || messageOf(error) === 'socket hang up' },
  });
}

/** HTTP statuses worth a second try: the registry or a proxy in front is busy or restarting. */
export function isTransientStatus(status: number): boolean {
  return status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

export function isTransientError(error: unknown): boolean {
  return error instanceof MacvmError && error.code === 'MACVM_REGISTRY_ERROR' && error.details.transient === true;
}

/**
 * Runs `attempt` up to `attempts` times while it fails transiently (Tart retries 5×), waiting
 * 0.25 s, 0.5 s, 1 s, 2 s between. Auth failures, 4xx and aborts are never retried.
 */
export async function withRetries<T>(attempt: () => Promise<T>, signal: AbortSignal | undefined, attempts = 5): Promise<T> {
  for (let tries = 1; ; tries += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (tries >= attempts || !isTransientError(error) || signal?.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (tries - 1)));
    }
  }
}
