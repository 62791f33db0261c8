/**
 * A token issuer for the test registry's Bearer auth (the "token" auth of CNCF distribution 2.8,
 * as ghcr.io and Docker Hub work): node:http on 127.0.0.1 answering
 * `GET /token?service=…&scope=repository:<name>:<actions>` with `{"token", "access_token",
 * "expires_in", "issued_at"}`.
 *
 * The token is a JWT signed ES256 with a fresh P-256 key whose self-signed certificate (made with
 * openssl) is the registry's `rootcertbundle`; the certificate travels in the JWT header's `x5c`,
 * which is how distribution finds the key. Claims: iss, sub, aud (the service), exp, nbf, iat,
 * jti, access [{type: 'repository', name, actions}].
 *
 * Who gets what: the right Basic user gets every action asked for; a wrong password gets 401;
 * an anonymous request gets a token with pull access when `anonymousPull` (a public image on
 * ghcr.io) and with no access otherwise (the registry then answers 401 insufficient_scope).
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenIssuerOptions {
  /** Where the key and certificate are written (the caller's private temp dir). */
  dir: string;
  username: string;
  password: string;
  service: string;
  issuer: string;
  anonymousPull?: boolean;
  /** expires_in of every token; default 300 s. */
  tokenTtlSeconds?: number;
}

export interface TokenIssuer {
  /** http://127.0.0.1:<port>/token */
  realm: string;
  /** The certificate the registry trusts (rootcertbundle). */
  certificatePath: string;
  /** Requests so far, with what was granted (never the credentials). */
  requests(): { scopes: string[]; user?: string; status: number; granted: string[] }[];
  stop(): Promise<void>;
}

export async function startTokenIssuer(options: TokenIssuerOptions): Promise<TokenIssuer> {
  const keyPath = join(options.dir, 'token-key.pem');
  const certificatePath = join(options.dir, 'token-cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certificatePath, '-days', '2', '-subj', '/CN=macvm-test-token-issuer',
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const certificatePem = await readFile(certificatePath, 'utf8');
  const certificateDer = certificatePem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const log: { scopes: string[]; user?: string; status: number; granted: string[] }[] = [];

  const server = createServer((req, res) => answer(req, res));
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://issuer');
    const scopes = url.searchParams.getAll('scope');
    const reply = (status: number, body: unknown, user?: string, granted: string[] = []) => {
      log.push({ scopes, ...(user ? { user } : {}), status, granted });
      res.writeHead(status, { 'Content-Type': 'application/json', ...(status === 401 ? { 'WWW-Authenticate': 'Basic realm="macvm-test-token-issuer"' } : {}) });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token' || req.method !== 'GET') return reply(404, { errors: [{ code: 'NOT_FOUND' }] });
    if (url.searchParams.get('service') !== options.service) return reply(400, { details: 'unknown service' });

    let user: string | undefined;
    const authorization = req.headers.authorization;
    if (authorization) {
      const match = /^Basic\s+(.+)$/i.exec(authorization);
      const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      if (colon < 0 || decoded.slice(0, colon) !== options.username || decoded.slice(colon + 1) !== options.password) {
        return reply(401, { details: 'incorrect username or password' }, colon > 0 ? decoded.slice(0, colon) : undefined);
      }
      user = options.username;
    }

    const access = scopes.flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      if (type !== 'repository' || !name || actions === undefined) return [];
      const asked = actions.split(',').filter(Boolean);
      const allowed = user ? asked : options.anonymousPull ? asked.filter((a) => a === 'pull') : [];
      return [{ type: 'repository', name, actions: allowed }];
    });
    const now = Math.floor(Date.now() / 1000);
    const ttl = options.tokenTtlSeconds ?? 300;
    const token = signJwt(
      { typ: 'JWT', alg: 'ES256', x5c: [certificateDer] },
      { iss: options.issuer, sub: user ?? '', aud: options.service, exp: now + ttl, nbf: now - 10, iat: now, jti: randomUUID(), access },
      key,
    );
    reply(200, { token, access_token: token, expires_in: ttl, issued_at: new Date(now * 1000).toISOString() }, user, access.flatMap((a) => a.actions.map((x) => `${a.name}:${x}`)));
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certificatePath,
    requests: () => log.map((entry) => ({ ...entry })),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function signJwt(header: object, claims: object, key: KeyObject): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  // JWS wants the raw r||s signature (IEEE P1363), not DER.
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url(signature)}`;
}
