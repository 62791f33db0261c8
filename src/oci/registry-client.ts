/**
 * A client for one repository of an OCI registry (the distribution spec: /v2/<repo>/manifests,
 * /v2/<repo>/blobs), as Tart speaks it and as ghcr.io and CNCF distribution answer it. It knows
 * nothing of Tart's image format or of VMs: manifests are JSON documents, blobs are bytes.
 *
 *   const client = new RegistryClient('ghcr.io', 'cirruslabs/macos-sonoma-base');
 *   const { digest, manifest } = await client.getManifest('latest');
 *   const { body, start } = await client.pullBlob(manifest.layers[0].digest);
 *   for await (const chunk of body) …
 *
 * Auth, credentials and transport rules live in registry-auth.ts, registry-credentials.ts and
 * registry-http.ts. Every operation retries transient failures (network errors, 429 and 5xx) up
 * to 5 times as Tart does; auth failures and other 4xx fail at once.
 */
import { createHash } from 'node:crypto';
import { MacvmError } from '../errors.js';
import { DIGEST_PATTERN } from './reference.js';
import { RegistryAuth, type Access } from './registry-auth.js';
import { lookupCredentials } from './registry-credentials.js';
import {
  baseUrlFor,
  discard,
  isTransientStatus,
  readBody,
  registryErrorText,
  sendRequest,
  transportError,
  withRetries,
  type HttpRequest,
  type HttpResponse,
  type TransportOptions,
} from './registry-http.js';

export interface OciDescriptor {
  mediaType: string;
  size: number;
  digest: string;
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST_LIST_MEDIA_TYPE = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** Manifests are small; registries refuse ones over 4 MiB, and so do we (a guard against a runaway answer). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export interface RegistryClientOptions {
  /** Allow plain HTTP to a registry that is not on loopback (Tart's --insecure). Loopback registries always use plain HTTP. */
  insecure?: boolean;
  /** Where credentials and credential helpers are looked up (TART_REGISTRY_*, DOCKER_CONFIG, HOME, PATH); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Docker's config.json; default $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
  dockerConfigPath?: string;
  userAgent?: string;
}

export interface PulledManifest {
  /** sha256 of the bytes, as received. */
  digest: string;
  /** From Content-Type (else the document's own mediaType). */
  mediaType: string;
  /** Exactly as received: hash or store these, never a re-serialisation. */
  bytes: Buffer;
  manifest: OciManifest;
}

export interface PulledBlob {
  /**
   * The bytes from `start` on, streamed. Iterate it to the end, or stop early with `break`
   * (which closes the connection). A connection cut midway throws MACVM_REGISTRY_ERROR from the
   * iteration: pull again with `start` at the bytes kept.
   */
  body: AsyncIterable<Buffer>;
  /** The offset the body starts at: the requested start when the registry honoured the Range (206), else 0. */
  start: number;
  /** The whole blob's size in bytes, when the registry said (Content-Length of a 200, the total of a 206's Content-Range). */
  size?: number;
}

export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  private readonly baseUrl: URL;
  private readonly transport: TransportOptions;
  private readonly auth: RegistryAuth;

  constructor(registry: string, repository: string, options: RegistryClientOptions = {}) {
    if (!registry || /[/\s]/.test(registry) || /^[a-z]+:/i.test(registry.replace(/:\d+$/, ''))) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `"${registry}" is not a registry host: write host or host:port, without a scheme or path (e.g. ghcr.io, 127.0.0.1:5000).`);
    }
    if (!repository || !/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `"${repository}" is not a repository name: lower-case letters and digits in parts separated by "/" (e.g. cirruslabs/macos-sonoma-base).`);
    }
    this.registry = registry;
    this.repository = repository;
    this.baseUrl = baseUrlFor(registry, options.insecure === true);
    this.transport = {
      insecure: options.insecure === true,
      userAgent: options.userAgent ?? `macvm (node ${process.version}; ${process.platform} ${process.arch})`,
    };
    const env = options.env ?? process.env;
    this.auth = new RegistryAuth({
      registry,
      repository,
      transport: this.transport,
      lookupCredentials: () => lookupCredentials(registry, { env, dockerConfigPath: options.dockerConfigPath }),
    });
  }

  /** `reference`: a tag or a `sha256:` digest. By digest, the bytes must hash to it (else MACVM_IMAGE_CORRUPT). */
  async getManifest(reference: string): Promise<PulledManifest> {
    const isDigest = checkManifestReference(reference);
    const name = `${this.registry}/${this.repository}${isDigest ? '@' : ':'}${reference}`;
    const doing = `fetching the manifest of ${name}`;
    return withRetries(async () => {
      const response = await this.request(
        {
          method: 'GET',
          url: this.url(`manifests/${reference}`),
          headers: { Accept: [OCI_MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE, DOCKER_MANIFEST_LIST_MEDIA_TYPE].join(', ') },
          doing,
        },
        'pull',
      );
      if (response.status === 404) {
        const said = await registryErrorText(response, doing);
        throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `${name} does not exist: the registry has no manifest for ${isDigest ? 'that digest' : `tag "${reference}"`}${said ? ` (${said})` : ''}.`, {
          hint: `Check the repository and tag (the registry's tags: GET /v2/${this.repository}/tags/list, or \`skopeo list-tags docker://${this.registry}/${this.repository}\`).`,
          details: { registry: this.registry, repository: this.repository, reference },
        });
      }
      await this.expectStatus(response, [200], doing);
      const bytes = await readBody(response, MAX_MANIFEST_BYTES, doing);
      const digest = sha256Digest(bytes);
      const announced = headerValue(response.headers['docker-content-digest']);
      if ((isDigest && digest !== reference) || (announced?.startsWith('sha256:') && announced !== digest)) {
        throw new MacvmError('MACVM_IMAGE_CORRUPT', `The manifest of ${name} arrived with digest ${digest}, not ${isDigest ? reference : `${announced}, the one the registry announced`}: it was changed on the way or in the registry.`, {
          hint: 'Pull again; if it persists, the registry (or a proxy in front of it) serves wrong bytes.',
          details: { registry: this.registry, repository: this.repository, reference, digest },
        });
      }
      const contentType = headerValue(response.headers['content-type'])?.split(';')[0]?.trim();
      return parseManifest(bytes, digest, contentType, name);
    }, undefined);
  }

  /** Stores a manifest under a tag (or its digest); returns the sha256 digest of `bytes`. */
  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const isDigest = checkManifestReference(reference);
    const digest = sha256Digest(bytes);
    if (isDigest && digest !== reference) {
      throw new MacvmError('MACVM_BAD_ARGUMENT', `putManifest: the manifest's bytes hash to ${digest}, not ${reference}, the digest it is to be stored under.`);
    }
    const name = `${this.registry}/${this.repository}${isDigest ? '@' : ':'}${reference}`;
    const doing = `pushing the manifest of ${name}`;
    await withRetries(async () => {
      const response = await this.request({ method: 'PUT', url: this.url(`manifests/${reference}`), headers: { 'Content-Type': mediaType }, body: bytes, doing }, 'pull,push');
      await this.expectStatus(response, [200, 201, 202, 204], doing);
      discard(response.body);
    }, undefined);
    return digest;
  }

  /** Whether the repository holds the blob (HEAD; a redirect to storage counts as yes). */
  async blobExists(digest: string): Promise<boolean> {
    checkDigest(digest, 'blobExists');
    const doing = `checking for blob ${digest} in ${this.registry}/${this.repository}`;
    return withRetries(async () => {
      // Not followed: a presigned storage URL is signed for GET, and a HEAD to it would be refused.
      const response = await this.request({ method: 'HEAD', url: this.url(`blobs/${digest}`), doing }, 'pull');
      discard(response.body);
      if (response.status === 200 || [301, 302, 303, 307, 308].includes(response.status)) return true;
      if (response.status === 404) return false;
      await this.expectStatus(response, [200], doing);
      return false;
    }, undefined);
  }

  /**
   * Streams a blob, from `start` when > 0 (a `Range: bytes=start-` request; see PulledBlob.start for
   * what was honoured). Follows redirects to object storage without our Authorization.
   * The bytes are not verified here: a caller that resumes knows the whole, and hashes it.
   */
  async pullBlob(digest: string, options: { start?: number; signal?: AbortSignal } = {}): Promise<PulledBlob> {
    checkDigest(digest, 'pullBlob');
    const requested = options.start ?? 0;
    if (!Number.isSafeInteger(requested) || requested < 0) throw new MacvmError('MACVM_BAD_ARGUMENT', `pullBlob: start must be a whole number ≥ 0, got ${requested}.`);
    const doing = `pulling blob ${digest} from ${this.registry}/${this.repository}`;
    return withRetries(async () => {
      let response = await this.blobGet(digest, requested, options.signal, doing);
      if (response.status === 416 && requested > 0) {
        // Range Not Satisfiable: the start is past the end; take it all again.
        discard(response.body);
        response = await this.blobGet(digest, 0, options.signal, doing);
      }
      if (response.status === 404) {
        discard(response.body);
        throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `${this.registry}/${this.repository} has no blob ${digest}: the image in the registry is incomplete.`, {
          hint: 'Push the image again; a manifest names only blobs that were uploaded before it.',
          details: { registry: this.registry, repository: this.repository, digest },
        });
      }
      await this.expectStatus(response, requested > 0 ? [200, 206] : [200], doing);
      const length = numberHeader(response.headers['content-length']);
      if (response.status === 206) {
        const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headerValue(response.headers['content-range']) ?? '');
        if (!range || Number(range[1]) !== requested) {
          discard(response.body);
          throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: asked for bytes from ${requested} on, the answer's Content-Range is "${headerValue(response.headers['content-range']) ?? ''}".`, {
            details: { registry: this.registry, status: 206 },
          });
        }
        const total = range[3] === '*' ? undefined : Number(range[3]);
        const expected = Number(range[2]) - requested + 1;
        return { body: streamBody(response, expected, doing, requested, options.signal), start: requested, ...(total !== undefined ? { size: total } : {}) };
      }
      return { body: streamBody(response, length, doing, 0, options.signal), start: 0, ...(length !== undefined ? { size: length } : {}) };
    }, options.signal);
  }

  /**
   * Uploads a blob: POST an upload session, then one PUT `?digest=` with the whole body (a
   * monolithic upload, streamed with a Content-Length when `body` is a function: distribution
   * and ghcr.io take it, and it costs one request). Does not check whether the blob is there
   * already (blobExists). The bytes must have `size` and hash to `digest` (MACVM_BAD_ARGUMENT
   * otherwise; for a stream the last chunk is held back until that is known, so a wrong stream
   * never completes an upload). A stream function is called once per attempt, and its chunks
   * must not be reused by the producer after they are yielded.
   */
  async pushBlob(digest: string, size: number, body: Buffer | (() => AsyncIterable<Uint8Array>), options: { signal?: AbortSignal } = {}): Promise<void> {
    checkDigest(digest, 'pushBlob');
    if (!Number.isSafeInteger(size) || size < 0) throw new MacvmError('MACVM_BAD_ARGUMENT', `pushBlob: size must be a whole number ≥ 0, got ${size}.`);
    if (Buffer.isBuffer(body)) {
      if (body.length !== size) throw new MacvmError('MACVM_BAD_ARGUMENT', `pushBlob: the buffer holds ${body.length} bytes, not ${size}.`);
      const actual = sha256Digest(body);
      if (actual !== digest) throw new MacvmError('MACVM_BAD_ARGUMENT', `pushBlob: the buffer hashes to ${actual}, not ${digest}.`);
    }
    const payload = Buffer.isBuffer(body) ? body : verifiedStream(body, digest, size);
    const doing = `pushing blob ${digest} to ${this.registry}/${this.repository}`;
    await withRetries(async () => {
      const started = await this.request({ method: 'POST', url: this.url('blobs/uploads/'), signal: options.signal, doing }, 'pull,push');
      await this.expectStatus(started, [202], doing);
      discard(started.body);
      const location = headerValue(started.headers.location);
      if (!location) {
        throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: the registry opened an upload without saying where to send it (no Location header).`, { details: { registry: this.registry } });
      }
      const url = new URL(location, this.baseUrl);
      url.searchParams.append('digest', digest);
      const finished = await this.request(
        { method: 'PUT', url, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) }, body: payload, signal: options.signal, doing },
        'pull,push',
      );
      await this.expectStatus(finished, [201, 204], doing);
      discard(finished.body);
    }, options.signal);
  }

  private url(path: string): URL {
    return new URL(`${this.repository}/${path}`, this.baseUrl);
  }

  private async blobGet(digest: string, start: number, signal: AbortSignal | undefined, doing: string): Promise<HttpResponse> {
    return this.request({ method: 'GET', url: this.url(`blobs/${digest}`), headers: start > 0 ? { Range: `bytes=${start}-` } : {}, signal, followRedirects: true, bulk: true, doing }, 'pull');
  }

  /** One request with the auth dance: send what we have; on 401 authenticate and send once more. */
  private async request(request: HttpRequest, access: Access): Promise<HttpResponse> {
    let sent: string | undefined;
    const send = () => {
      sent = request.url.host === this.baseUrl.host ? this.auth.headerFor(access) : undefined;
      return sendRequest({ ...request, headers: { ...request.headers, ...(sent ? { Authorization: sent } : {}) } }, this.transport);
    };
    let response = await send();
    const fromRegistry = () => response.url.host === this.baseUrl.host;
    if (response.status === 401 && fromRegistry()) {
      const challenge = headerValue(response.headers['www-authenticate']);
      discard(response.body);
      await this.auth.authenticate(challenge, access, sent, request.signal);
      response = await send();
      if (response.status === 401 && fromRegistry()) {
        discard(response.body);
        throw await this.auth.refused(access, 401);
      }
    }
    if (response.status === 403 && fromRegistry()) {
      discard(response.body);
      throw await this.auth.refused(access, 403);
    }
    return response;
  }

  /** Anything but `ok` is MACVM_REGISTRY_ERROR with the status and the registry's own words (transient for 429/5xx). */
  private async expectStatus(response: HttpResponse, ok: number[], doing: string): Promise<void> {
    if (ok.includes(response.status)) return;
    const said = await registryErrorText(response, doing);
    throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: ${response.url.host} answered HTTP ${response.status}${said ? ` (${said})` : ''}.`, {
      hint: isTransientStatus(response.status) ? 'The registry is busy or failing; try again later.' : undefined,
      details: { registry: this.registry, host: response.url.host, status: response.status, transient: isTransientStatus(response.status) },
    });
  }
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function checkDigest(digest: string, verb: string): void {
  if (typeof digest !== 'string' || !DIGEST_PATTERN.test(digest)) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `${verb}: "${digest}" is not a digest (sha256: and 64 lower-case hex digits).`);
  }
}

/** true for a digest, false for a tag; anything else is MACVM_BAD_ARGUMENT. */
function checkManifestReference(reference: string): boolean {
  if (typeof reference === 'string' && DIGEST_PATTERN.test(reference)) return true;
  if (typeof reference === 'string' && TAG_PATTERN.test(reference)) return false;
  throw new MacvmError('MACVM_BAD_ARGUMENT', `"${reference}" is neither a tag (letters, digits, ".", "_", "-") nor a sha256: digest.`);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function numberHeader(value: string | string[] | undefined): number | undefined {
  const text = headerValue(value);
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** The response body as chunks, its errors as MACVM_REGISTRY_ERROR, and a short body as one too. */
async function* streamBody(response: HttpResponse, expected: number | undefined, doing: string, offset: number, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  let received = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      yield chunk;
    }
  } catch (error) {
    // An abort reaches the body as a reset connection: say it was ours.
    if (signal?.aborted) throw signal.reason ?? error;
    if ((error as Error)?.name === 'AbortError') throw error;
    const wrapped = transportError(error, doing, response.url);
    throw new MacvmError('MACVM_REGISTRY_ERROR', `${wrapped.message.replace(/\.$/, '')}, after ${offset + received} bytes; pull again from there.`, {
      cause: error,
      details: { ...wrapped.details, received: offset + received },
    });
  } finally {
    if (!response.body.complete) response.body.destroy();
  }
  if (expected !== undefined && received !== expected) {
    throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: the answer from ${response.url.host} ended after ${received} of ${expected} bytes.`, {
      details: { host: response.url.host, received: offset + received, transient: true },
    });
  }
}

/** Passes the stream through, holding its last chunk until the whole has the promised size and digest. */
function verifiedStream(source: () => AsyncIterable<Uint8Array>, digest: string, size: number): () => AsyncIterable<Uint8Array> {
  return async function* verify() {
    const hash = createHash('sha256');
    let length = 0;
    let held: Uint8Array | undefined;
    for await (const chunk of source()) {
      if (held) yield held;
      hash.update(chunk);
      length += chunk.length;
      if (length > size) throw new MacvmError('MACVM_BAD_ARGUMENT', `pushBlob: the stream for ${digest} holds more than the ${size} bytes announced.`);
      held = chunk;
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (length !== size) throw new MacvmError('MACVM_BAD_ARGUMENT', `pushBlob: the stream for ${digest} held ${length} bytes, not the ${size} announced.`);
    if (actual !== digest) throw new MacvmError('MACVM_BAD_ARGUMENT', `pushBlob: the stream hashes to ${actual}, not ${digest}.`);
    if (held) yield held;
  };
}

function parseManifest(bytes: Buffer, digest: string, contentType: string | undefined, name: string): PulledManifest {
  let document: Record<string, unknown>;
  try {
    document = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    if (!document || typeof document !== 'object' || Array.isArray(document)) throw new Error('not an object');
  } catch {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `The manifest of ${name} is not a JSON object.`, { details: { digest } });
  }
  const mediaType = contentType && contentType !== 'application/json' && contentType !== 'text/plain' ? contentType : typeof document.mediaType === 'string' ? document.mediaType : OCI_MANIFEST_MEDIA_TYPE;
  const isIndex = mediaType === OCI_INDEX_MEDIA_TYPE || mediaType === DOCKER_MANIFEST_LIST_MEDIA_TYPE || (Array.isArray(document.manifests) && !('layers' in document));
  if (isIndex) {
    // An index lists one manifest per platform. Tart pushes a single image manifest and macvm reads
    // only that; picking an entry for the caller would guess at the platform, so the user names one.
    const entries = (Array.isArray(document.manifests) ? document.manifests : []) as { digest?: unknown; platform?: { os?: unknown; architecture?: unknown } }[];
    const listed = entries
      .slice(0, 6)
      .map((entry) => `${String(entry.platform?.os ?? '?')}/${String(entry.platform?.architecture ?? '?')} ${String(entry.digest ?? '')}`)
      .join(', ');
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `${name} is an image index (a list of per-platform manifests${listed ? `: ${listed}` : ''}), not an image manifest.`, {
      hint: `macvm reads one image manifest, as Tart pushes it. Name one entry by digest: ${name.replace(/[:@][^/]*$/, '')}@sha256:…`,
      details: { digest, mediaType },
    });
  }
  if (mediaType !== OCI_MANIFEST_MEDIA_TYPE && mediaType !== DOCKER_MANIFEST_MEDIA_TYPE) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `The manifest of ${name} has media type ${mediaType}; macvm reads ${OCI_MANIFEST_MEDIA_TYPE} (and Docker's v2 manifest).`, {
      details: { digest, mediaType },
    });
  }
  if (document.schemaVersion !== 2) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `The manifest of ${name} has schemaVersion ${String(document.schemaVersion)}; macvm reads schemaVersion 2.`, { details: { digest } });
  }
  const config = descriptorOf(document.config, 'config', name, digest);
  if (!Array.isArray(document.layers)) throw new MacvmError('MACVM_IMAGE_CORRUPT', `The manifest of ${name} has no layers array.`, { details: { digest } });
  const layers = document.layers.map((layer, index) => descriptorOf(layer, `layers[${index}]`, name, digest));
  const manifest: OciManifest = {
    schemaVersion: 2,
    ...(typeof document.mediaType === 'string' ? { mediaType: document.mediaType } : {}),
    config,
    layers,
    ...(isStringRecord(document.annotations) ? { annotations: document.annotations } : {}),
  };
  return { digest, mediaType, bytes, manifest };
}

function descriptorOf(value: unknown, where: string, name: string, manifestDigest: string): OciDescriptor {
  const entry = value as Record<string, unknown> | undefined;
  const bad = (what: string): never => {
    throw new MacvmError('MACVM_IMAGE_CORRUPT', `The manifest of ${name}: ${where} ${what}.`, { details: { digest: manifestDigest } });
  };
  if (!entry || typeof entry !== 'object') bad('is not a descriptor object');
  if (typeof entry!.mediaType !== 'string') bad('has no mediaType');
  if (typeof entry!.size !== 'number' || !Number.isSafeInteger(entry!.size) || entry!.size < 0) bad('has no valid size');
  if (typeof entry!.digest !== 'string') bad('has no digest');
  if (!DIGEST_PATTERN.test(entry!.digest as string)) {
    throw new MacvmError('MACVM_IMAGE_FORMAT_UNSUPPORTED', `The manifest of ${name}: ${where} has digest "${String(entry!.digest)}"; macvm verifies sha256 digests only (as Tart writes them).`, {
      details: { digest: manifestDigest },
    });
  }
  return {
    mediaType: entry!.mediaType as string,
    size: entry!.size as number,
    digest: entry!.digest as string,
    ...(isStringRecord(entry!.annotations) ? { annotations: entry!.annotations } : {}),
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return !!value && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}
