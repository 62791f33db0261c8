import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import WebSocket from 'ws';
import type { ControllerTarget } from './settings.js';

/**
 * A small client for the Orchard controller's REST API (cirruslabs/orchard api/openapi.yaml;
 * routes in internal/controller/api.go, all under /v1):
 *
 *   GET    /v1/controller/info               any valid service account        (api_controller.go)
 *   POST   /v1/vms                           compute:write  {name, image, cpu, memory, ...} (api_vms.go createVM)
 *   GET    /v1/vms/{name}                    compute:read   VM with status / status_message
 *   DELETE /v1/vms/{name}                    compute:write
 *   GET    /v1/vms/{name}/port-forward?port=&wait=   compute:write or compute:connect; WebSocket
 *                                            (api_vms_portforward.go)
 *
 * As Orchard's own client does it (pkg/client/client.go): HTTP basic auth with the service
 * account's name and token on every request; a User-Agent on every request (the controller
 * speaks binary WebSocket messages to clients that send one, text to those that do not); a
 * 30 s timeout per request; with a pinned controller certificate, that certificate is the only
 * trusted CA and its first DNS name the verified server name.
 *
 * Requests go through node:http/https rather than the global fetch: fetch (undici) cannot be given
 * a CA or server name without undici's own Agent, which is not a dependency of macvm.
 *
 * Error bodies: the controller answers {"message": "..."} for validation and role failures
 * (internal/controller/errorresponse.go) and an empty body for a bad token and for "not found"
 * (internal/responder/code.go, error.go).
 */

export type VmStatus = 'pending' | 'running' | 'failed';

/** The parts of Orchard's VM resource (pkg/resource/v1/v1.go) macvm reads or writes. */
export interface OrchardVm {
  name: string;
  image?: string;
  cpu?: number;
  memory?: number;
  diskSize?: number;
  headless?: boolean;
  imagePullPolicy?: 'IfNotPresent' | 'Always';
  labels?: Record<string, string>;
  resources?: Record<string, number>;
  status?: VmStatus;
  status_message?: string;
  worker?: string;
  uid?: string;
}

export interface ControllerInfo {
  version?: string;
  commit?: string;
  capabilities?: string[];
}

/** A non-2xx answer from the controller. */
export class OrchardApiError extends Error {
  override readonly name = 'OrchardApiError';
  constructor(
    readonly status: number,
    /** The body's "message", if it had one. */
    readonly apiMessage: string | undefined,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${status}${apiMessage ? ` (${apiMessage})` : ''}`);
  }
}

export interface RequestOptionsLite {
  signal?: AbortSignal;
  query?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
}

/** What macvm sends as User-Agent; anything non-empty makes the controller use binary frames. */
export const USER_AGENT = 'macvm-orchard/0.1';
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_BODY_BYTES = 1 << 20;

export class OrchardClient {
  readonly url: string;
  readonly serviceAccountName: string | undefined;
  readonly target: Omit<ControllerTarget, 'serviceAccount'>;
  // A private field: never in util.inspect output, JSON or error messages.
  readonly #authorization: string | undefined;

  constructor(target: ControllerTarget) {
    this.url = target.url;
    this.serviceAccountName = target.serviceAccount?.name;
    this.target = { url: target.url, certificatePem: target.certificatePem, serverName: target.serverName, origin: target.origin, context: target.context };
    // pkg/client/client.go modifyHeader: basic auth only when both name and token are set.
    this.#authorization = target.serviceAccount?.name && target.serviceAccount.token ? `Basic ${Buffer.from(`${target.serviceAccount.name}:${target.serviceAccount.token}`).toString('base64')}` : undefined;
  }

  /** GET /v1/controller/info: reachable, and the service account is valid. */
  controllerInfo(signal?: AbortSignal): Promise<ControllerInfo> {
    return this.json<ControllerInfo>('GET', 'controller/info', { signal });
  }

  createVm(vm: OrchardVm, signal?: AbortSignal): Promise<OrchardVm> {
    return this.json<OrchardVm>('POST', 'vms', { body: vm, signal });
  }

  getVm(name: string, signal?: AbortSignal): Promise<OrchardVm> {
    return this.json<OrchardVm>('GET', `vms/${encodeURIComponent(name)}`, { signal });
  }

  /** DELETE /v1/vms/{name}; false when the controller does not know it (404), so deleting is idempotent. */
  async deleteVm(name: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.call('DELETE', `vms/${encodeURIComponent(name)}`, { signal });
      return true;
    } catch (error) {
      if (error instanceof OrchardApiError && error.status === 404) return false;
      throw error;
    }
  }

  /**
   * Opens the port-forward WebSocket to `port` of the VM (pkg/client/vms.go PortForward). Resolves
   * once upgraded; each binary message then carries raw TCP bytes in either direction
   * (the controller wraps the socket with coder/websocket's NetConn, MessageBinary).
   * Rejects with OrchardApiError for an HTTP answer instead of an upgrade.
   */
  openPortForward(name: string, port: number, waitSeconds: number, signal?: AbortSignal): Promise<WebSocket> {
    const url = new URL(this.endpoint(`vms/${encodeURIComponent(name)}/port-forward`));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('port', String(port));
    url.searchParams.set('wait', String(Math.max(0, Math.min(65535, Math.round(waitSeconds)))));
    const path = `/v1/vms/${name}/port-forward`;
    return new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url, {
        headers: this.headers(),
        ...this.tlsOptions(),
        // The controller waits up to `wait` seconds for the VM and the guest port before it answers.
        handshakeTimeout: (waitSeconds + REQUEST_TIMEOUT_MS / 1000) * 1000,
        perMessageDeflate: false,
        followRedirects: false,
      });
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        socket.terminate();
        reject(error);
      };
      const onAbort = () => fail(abortReason(signal!));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('unexpected-response', (_request, response) => {
        void readBody(response).then(
          (body) => fail(new OrchardApiError(response.statusCode ?? 0, apiMessage(body), 'GET', path)),
          (error: unknown) => fail(error instanceof Error ? error : new Error(String(error))),
        );
      });
      socket.once('error', (error) => fail(error));
      socket.once('open', () => {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve(socket);
      });
    });
  }

  private async json<T>(method: string, path: string, options: RequestOptionsLite): Promise<T> {
    const { body } = await this.call(method, path, options);
    try {
      return JSON.parse(body) as T;
    } catch {
      throw new OrchardApiError(502, `the controller answered ${method} /v1/${path} with something that is not JSON: ${body.slice(0, 80)}`, method, `/v1/${path}`);
    }
  }

  /** One request; resolves for 2xx (Orchard answers 200), rejects with OrchardApiError otherwise. */
  private call(method: string, path: string, options: RequestOptionsLite): Promise<{ status: number; body: string }> {
    const url = new URL(this.endpoint(path));
    for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string> = { ...this.headers(), Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const requestOptions: RequestOptions & Record<string, unknown> = { method, headers, ...this.tlsOptions() };
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) return reject(abortReason(options.signal));
      const req = send(url, requestOptions, (response) => {
        readBody(response).then((body) => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve({ status, body });
          else reject(new OrchardApiError(status, apiMessage(body), method, `/v1/${path}`));
        }, reject);
      });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer within ${(options.timeoutMs ?? REQUEST_TIMEOUT_MS) / 1000}s`), { code: 'ETIMEDOUT' })), options.timeoutMs ?? REQUEST_TIMEOUT_MS);
      timer.unref();
      const onAbort = () => req.destroy(abortReason(options.signal!));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      });
      req.once('error', reject);
      req.end(payload);
    });
  }

  private endpoint(path: string): string {
    // pkg/client/client.go formatPath: <base URL incl. any prefix>/v1/<path>
    return `${this.url}/v1/${path}`;
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { 'User-Agent': USER_AGENT };
    if (this.#authorization) headers.Authorization = this.#authorization;
    return headers;
  }

  private tlsOptions(): { ca?: string; servername?: string } {
    if (!this.target.certificatePem) return {};
    return { ca: this.target.certificatePem, ...(this.target.serverName ? { servername: this.target.serverName } : {}) };
  }
}

function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    response.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.once('error', reject);
  });
}

/** {"message": "..."} as the controller writes errors (internal/controller/errorresponse.go). */
function apiMessage(body: string): string | undefined {
  if (!body.trim()) return undefined;
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    return typeof parsed.message === 'string' && parsed.message ? parsed.message : undefined;
  } catch {
    return body.trim().slice(0, 200);
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}
