/**
 * A tiny HTTP proxy on 127.0.0.1 in front of the test registry: every request passes through
 * untouched (the Host header too, so the registry's Location headers point back at the proxy),
 * is counted, and can be hit by a fault the test injects:
 *
 *   registry.injectFault({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'cut', afterBytes: 1000 } });
 *
 * Faults (each used `times` times, default once, then gone):
 * - `cut`      — forward the status and headers, then only `afterBytes` of the body, then drop the connection;
 * - `corrupt`  — forward everything with the byte at body offset `at` flipped (XOR 0xff);
 * - `status`   — answer `status` (e.g. 503) without asking the registry;
 * - `redirect` — answer 307 with `Location: location` (to test object-storage redirects);
 * - `hold`     — wait `ms` before forwarding (a slow registry; not for timing assertions).
 *
 * What it records per request is method, path (no query), status, Range, and the Authorization
 * scheme only: no credentials ever reach a test's log.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { kind: 'cut'; afterBytes: number }
  | { kind: 'corrupt'; at: number }
  | { kind: 'status'; status: number }
  | { kind: 'redirect'; location: string }
  | { kind: 'hold'; ms: number };

export interface FaultRule {
  /** Any method when absent. */
  method?: string;
  /** Matched against the path without the query. */
  path: RegExp;
  fault: Fault;
  /** How many matching requests it hits; default 1 (Infinity for all). */
  times?: number;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  status: number;
  range?: string;
  auth?: 'basic' | 'bearer' | 'other';
  fault?: Fault['kind'];
}

export interface FaultProxy {
  /** 127.0.0.1:<port> */
  host: string;
  injectFault(rule: FaultRule): void;
  clearFaults(): void;
  requests(): ProxiedRequest[];
  stop(): Promise<void>;
}

export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
  const rules: (FaultRule & { left: number })[] = [];
  const log: ProxiedRequest[] = [];
  const agent = new Agent({ keepAlive: true });

  const takeFault = (method: string, path: string): Fault | undefined => {
    const index = rules.findIndex((rule) => (!rule.method || rule.method === method) && rule.path.test(path));
    if (index < 0) return undefined;
    const rule = rules[index]!;
    rule.left -= 1;
    if (rule.left <= 0) rules.splice(index, 1);
    return rule.fault;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    const authorization = req.headers.authorization;
    const entry: ProxiedRequest = {
      method,
      path,
      status: 0,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(authorization ? { auth: /^basic /i.test(authorization) ? 'basic' : /^bearer /i.test(authorization) ? 'bearer' : 'other' } : {}),
    };
    log.push(entry);
    const fault = takeFault(method, path);
    if (fault) entry.fault = fault.kind;

    if (fault?.kind === 'status' || fault?.kind === 'redirect') {
      req.resume();
      entry.status = fault.kind === 'status' ? fault.status : 307;
      res.writeHead(entry.status, fault.kind === 'redirect' ? { Location: fault.location, 'Content-Length': '0' } : { 'Content-Type': 'application/json' });
      res.end(fault.kind === 'status' ? JSON.stringify({ errors: [{ code: 'INJECTED', message: `fault injected by the test: HTTP ${fault.status}` }] }) : undefined);
      return;
    }
    if (fault?.kind === 'hold') await new Promise((resolve) => setTimeout(resolve, fault.ms));

    const upstream = httpRequest({ host: '127.0.0.1', port: upstreamPort, method, path: req.url, headers: req.headers, agent }, (answer) => {
      entry.status = answer.statusCode ?? 0;
      res.writeHead(entry.status, answer.rawHeaders);
      let offset = 0;
      answer.on('data', (chunk: Buffer) => {
        if (fault?.kind === 'cut') {
          const room = fault.afterBytes - offset;
          if (room > 0) res.write(chunk.subarray(0, room));
          offset += chunk.length;
          if (offset >= fault.afterBytes) {
            answer.destroy();
            // Let the bytes written so far leave, then drop the connection mid-body.
            res.socket?.end(() => res.socket?.destroy());
            setTimeout(() => res.socket?.destroy(), 50);
          }
          return;
        }
        if (fault?.kind === 'corrupt' && fault.at >= offset && fault.at < offset + chunk.length) {
          chunk = Buffer.from(chunk);
          const at = fault.at - offset;
          chunk[at] = chunk[at]! ^ 0xff;
        }
        offset += chunk.length;
        res.write(chunk);
      });
      answer.on('end', () => {
        if (fault?.kind === 'cut' && offset < fault.afterBytes) res.socket?.destroy();
        else res.end();
      });
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => {
      entry.status = 502;
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    injectFault: (rule) => rules.push({ ...rule, left: rule.times ?? 1 }),
    clearFaults: () => rules.splice(0),
    requests: () => log.map((entry) => ({ ...entry })),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}
