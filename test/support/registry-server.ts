/**
 * A REAL OCI registry for tests — Debian's `docker-registry` (CNCF distribution 2.8) — on
 * 127.0.0.1 with a free port and a private temp dir for its storage and config, not a mock:
 *
 *   const registry = await startRegistry({ auth: 'token' });
 *   try {
 *     const client = new RegistryClient(registry.host, 'team/linux-test', { env: registry.env });
 *     ...
 *     expect(registry.stats().blobGets).toBe(1);
 *   } finally {
 *     await registry.stop();
 *   }
 *
 * - auth 'none': anyone may pull and push.
 * - auth 'basic': an htpasswd file (bcrypt, made with `htpasswd -Bbn`) with one random user.
 * - auth 'token': Bearer tokens from a small issuer in this process (registry-token-issuer.ts)
 *   that checks the same user; `anonymousPull: true` lets anyone pull (a public ghcr.io image).
 *
 * `host` is a fault proxy in front of the registry (registry-fault-proxy.ts): it counts what
 * passes and can cut, corrupt, fail or redirect a response on demand (`injectFault`). Clients
 * and `skopeo` alike talk to `host`; `registryHost` is the registry itself, without the proxy.
 *
 * stop() ends the registry, the proxy and the issuer and removes the temp dir. Needs the Debian
 * packages docker-registry, apache2-utils (htpasswd) and openssl.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freeLoopbackPort } from '../../src/util/free-port.js';
import { startFaultProxy, type FaultProxy, type FaultRule, type ProxiedRequest } from './registry-fault-proxy.js';
import { startTokenIssuer, type TokenIssuer } from './registry-token-issuer.js';

const run = promisify(execFile);

export const DOCKER_REGISTRY_PATH = '/usr/bin/docker-registry';
const TOKEN_SERVICE = 'macvm-test-registry';
const TOKEN_ISSUER = 'macvm-test-token-issuer';

export interface RegistryOptions {
  auth: 'none' | 'basic' | 'token';
  /** token auth: let anonymous clients pull (push still needs the user). */
  anonymousPull?: boolean;
  /** token auth: expires_in of every token; default 300 s. */
  tokenTtlSeconds?: number;
  /** How long to wait for /v2/ to answer; default 20 s. */
  startTimeoutMs?: number;
}

export interface RegistryStats {
  /** Token requests the issuer answered (any status). */
  tokenRequests: number;
  /** GETs of a blob (not HEADs, not uploads), in all and per digest. */
  blobGets: number;
  blobGetsByDigest: Record<string, number>;
  manifestGets: number;
  /** Every request through the proxy, in order. */
  requests: ProxiedRequest[];
}

export interface TestRegistry {
  /** 127.0.0.1:<port> of the fault proxy: what clients use. */
  readonly host: string;
  /** 127.0.0.1:<port> of the registry itself. */
  readonly registryHost: string;
  readonly username?: string;
  readonly password?: string;
  /** An environment with TART_REGISTRY_USERNAME/PASSWORD/HOSTNAME set for `host` (and HOME pointed at an empty dir, so no real ~/.docker leaks in). */
  readonly env: NodeJS.ProcessEnv;
  /** An environment with no credentials at all (HOME at an empty dir). */
  readonly anonymousEnv: NodeJS.ProcessEnv;
  /** The private temp dir (storage under storage/). */
  readonly dir: string;
  stats(): RegistryStats;
  injectFault(rule: FaultRule): void;
  clearFaults(): void;
  /** The registry's own log so far (for a failing test's message). */
  log(): string;
  stop(): Promise<void>;
}

export async function startRegistry(options: RegistryOptions): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-registry-'));
  const cleanups: (() => Promise<void>)[] = [async () => rm(dir, { recursive: true, force: true })];
  const stopAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  };
  try {
    return await startIn(dir, options, cleanups, stopAll);
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function startIn(dir: string, options: RegistryOptions, cleanups: (() => Promise<void>)[], stopAll: () => Promise<void>): Promise<TestRegistry> {
  const storage = join(dir, 'storage');
  const home = join(dir, 'home');
  await Promise.all([mkdir(storage), mkdir(home)]);
  const username = options.auth === 'none' ? undefined : `macvm-${randomBytes(3).toString('hex')}`;
  const password = options.auth === 'none' ? undefined : randomBytes(12).toString('base64url');

  const authLines: string[] = [];
  let issuer: TokenIssuer | undefined;
  if (options.auth === 'basic') {
    const { stdout } = await run('htpasswd', ['-Bbn', username!, password!]);
    await writeFile(join(dir, 'htpasswd'), stdout.trim() + '\n', { mode: 0o600 });
    authLines.push('auth:', '  htpasswd:', '    realm: macvm-test-registry', `    path: ${join(dir, 'htpasswd')}`);
  } else if (options.auth === 'token') {
    issuer = await startTokenIssuer({
      dir,
      username: username!,
      password: password!,
      service: TOKEN_SERVICE,
      issuer: TOKEN_ISSUER,
      anonymousPull: options.anonymousPull,
      tokenTtlSeconds: options.tokenTtlSeconds,
    });
    cleanups.push(() => issuer!.stop());
    authLines.push('auth:', '  token:', `    realm: ${issuer.realm}`, `    service: ${TOKEN_SERVICE}`, `    issuer: ${TOKEN_ISSUER}`, `    rootcertbundle: ${issuer.certificatePath}`);
  }

  let output = '';
  let port = 0;
  for (let attempt = 1; ; attempt += 1) {
    port = await freeLoopbackPort();
    const configPath = join(dir, 'config.yml');
    await writeFile(
      configPath,
      [
        'version: 0.1',
        'log:',
        '  level: info',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${storage}`,
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        ...authLines,
        '',
      ].join('\n'),
    );
    const proc = spawn(DOCKER_REGISTRY_PATH, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const onText = (text: string) => {
      output = (output + text).slice(-200_000);
    };
    proc.stdout!.setEncoding('utf8').on('data', onText);
    proc.stderr!.setEncoding('utf8').on('data', onText);
    cleanups.push(async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    });
    const ready = await waitForV2(port, proc, options.startTimeoutMs ?? 20_000);
    if (ready) break;
    if (attempt >= 3 || !/address already in use/.test(output)) {
      throw new Error(`docker-registry did not answer on 127.0.0.1:${port}/v2/. Its log:\n${output}`);
    }
  }

  const proxy: FaultProxy = await startFaultProxy(port);
  cleanups.push(() => proxy.stop());
  const proxyHost = proxy.host;
  const baseEnv = { PATH: process.env.PATH, HOME: home };

  return {
    host: proxyHost,
    registryHost: `127.0.0.1:${port}`,
    ...(username ? { username, password } : {}),
    env: username ? { ...baseEnv, TART_REGISTRY_USERNAME: username, TART_REGISTRY_PASSWORD: password, TART_REGISTRY_HOSTNAME: proxyHost } : { ...baseEnv },
    anonymousEnv: { ...baseEnv },
    dir,
    stats: () => {
      const requests = proxy.requests();
      const blobGets = requests.filter((r) => r.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(r.path));
      const blobGetsByDigest: Record<string, number> = {};
      for (const get of blobGets) {
        const digest = get.path.slice(get.path.lastIndexOf('/') + 1);
        blobGetsByDigest[digest] = (blobGetsByDigest[digest] ?? 0) + 1;
      }
      return {
        tokenRequests: issuer?.requests().length ?? 0,
        blobGets: blobGets.length,
        blobGetsByDigest,
        manifestGets: requests.filter((r) => r.method === 'GET' && /\/manifests\//.test(r.path)).length,
        requests,
      };
    },
    injectFault: (rule) => proxy.injectFault(rule),
    clearFaults: () => proxy.clearFaults(),
    log: () => output,
    stop: stopAll,
  };
}

/** true once GET /v2/ answers (200 or 401); false when the process exited first or time ran out. */
async function waitForV2(port: number, proc: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) return false;
    const status = await new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/v2/', method: 'GET', timeout: 1_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (status === 200 || status === 401) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}
