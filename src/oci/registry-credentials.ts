/**
 * Where registry credentials come from, in Tart's order:
 *
 * 1. `TART_REGISTRY_USERNAME` + `TART_REGISTRY_PASSWORD` — for every host, or only for
 *    `TART_REGISTRY_HOSTNAME` when that is set (the same variables Tart and Orchard read, so one CI
 *    secret serves all three).
 * 2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): an
 *    `auths` entry for the host (`auth` = base64 "user:password", or `username` + `password`),
 *    then `credHelpers[host]`, then `credsStore`: `docker-credential-<name> get` with the host on
 *    stdin, `{"Username", "Secret"}` on stdout (what `docker login` leaves behind on a desktop).
 *
 * Tart also reads the macOS keychain; macvm does not (it runs on Linux hosts too): use the
 * variables or `docker login`. A helper that fails does not stop an anonymous pull of a public
 * image: the reason is kept (without the helper's output, which may hold a secret) and shown
 * only if the registry then demands credentials.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
  /** Where they came from, for messages: "TART_REGISTRY_USERNAME/PASSWORD", "~/.docker/config.json (auths)", … */
  readonly source: string;
}

export interface CredentialLookup {
  credentials?: RegistryCredentials;
  /** Why a configured source gave nothing (a helper that failed, an unreadable config): for error hints. */
  problems: string[];
}

export interface CredentialOptions {
  /** The environment to read (and to run credential helpers with); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Docker's config.json; default $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
  dockerConfigPath?: string;
}

/** How long a credential helper may take: a desktop keychain prompt must not hang a CI run forever. */
const HELPER_TIMEOUT_MS = 30_000;

/** `host` is `name[:port]` as in the image reference. */
export async function lookupCredentials(host: string, options: CredentialOptions = {}): Promise<CredentialLookup> {
  const env = options.env ?? process.env;
  const problems: string[] = [];

  const fromEnv = credentialsFromEnv(host, env);
  if (fromEnv) return { credentials: fromEnv, problems };

  const configPath = dockerConfigPathOf(options, env);
  let config: DockerConfig | undefined;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as DockerConfig;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      problems.push(`${configPath} could not be read as JSON (${(error as NodeJS.ErrnoException).code ?? 'invalid JSON'})`);
    }
    return { problems };
  }
  if (!config || typeof config !== 'object') return { problems: [`${configPath} is not a JSON object`] };

  const fromAuths = credentialsFromAuths(host, config, configPath);
  if (fromAuths) return { credentials: fromAuths, problems };

  const helper = credentialHelperFor(host, config);
  if (helper) {
    const result = await runCredentialHelper(helper, host, env);
    if ('credentials' in result) return { credentials: result.credentials, problems };
    if (result.problem) problems.push(result.problem);
  }
  return { problems };
}

export function credentialsFromEnv(host: string, env: NodeJS.ProcessEnv): RegistryCredentials | undefined {
  const onlyFor = env.TART_REGISTRY_HOSTNAME;
  if (onlyFor && onlyFor !== host) return undefined;
  const username = env.TART_REGISTRY_USERNAME;
  const password = env.TART_REGISTRY_PASSWORD;
  if (username === undefined || password === undefined) return undefined;
  return { username, password, source: 'TART_REGISTRY_USERNAME/PASSWORD' };
}

interface DockerConfig {
  auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown } | undefined>;
  credHelpers?: Record<string, unknown>;
  credsStore?: unknown;
}

function dockerConfigPathOf(options: CredentialOptions, env: NodeJS.ProcessEnv): string {
  if (options.dockerConfigPath) return options.dockerConfigPath;
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(env.HOME || homedir(), '.docker', 'config.json');
}

/** `docker login` may key an entry by "host", "https://host" or "https://host/v1/": all mean the host. */
function authsKeyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

function credentialsFromAuths(host: string, config: DockerConfig, configPath: string): RegistryCredentials | undefined {
  const auths = config.auths && typeof config.auths === 'object' ? config.auths : {};
  const key = host in auths ? host : Object.keys(auths).find((candidate) => authsKeyHost(candidate) === host);
  const entry = key === undefined ? undefined : auths[key];
  if (!entry || typeof entry !== 'object') return undefined;
  const source = `${configPath} (auths)`;
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    // Split at the first colon only: a password may contain colons (Tart refuses those).
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string' && entry.username !== '') {
    return { username: entry.username, password: entry.password, source };
  }
  return undefined;
}

/**
 * `credHelpers[host]`, then (as Tart allows) a `credHelpers` key that is a regular expression
 * matching the whole host, then `credsStore`.
 */
function credentialHelperFor(host: string, config: DockerConfig): string | undefined {
  const helpers = config.credHelpers && typeof config.credHelpers === 'object' ? config.credHelpers : {};
  const exact = helpers[host];
  if (typeof exact === 'string' && exact) return exact;
  for (const [pattern, helper] of Object.entries(helpers)) {
    if (typeof helper !== 'string' || !helper) continue;
    try {
      if (new RegExp(`^(?:${pattern})$`).test(host)) return helper;
    } catch {
      // Not a regular expression: only an exact match counts, and that was tried.
    }
  }
  return typeof config.credsStore === 'string' && config.credsStore ? config.credsStore : undefined;
}

type HelperResult = { credentials: RegistryCredentials } | { problem?: string };

/**
 * Runs `docker-credential-<helper> get` (found on the PATH of `env`). "credentials not found" is no
 * problem: the helper simply has nothing for this host. Its output is never put in a message.
 */
export function runCredentialHelper(helper: string, host: string, env: NodeJS.ProcessEnv): Promise<HelperResult> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve) => {
    let stdout = '';
    let settled = false;
    const finish = (result: HelperResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ problem: `${program} get did not answer within ${HELPER_TIMEOUT_MS / 1000} s` });
    }, HELPER_TIMEOUT_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      stdout += text;
    });
    child.stdin.on('error', () => {
      // The helper exited without reading its input; its exit status tells the story.
    });
    child.stdin.end(`${host}\n`);
    child.on('error', (error: NodeJS.ErrnoException) => {
      finish({ problem: error.code === 'ENOENT' ? `${program} (named in Docker's config.json) is not on PATH` : `${program} could not be started (${error.code ?? 'error'})` });
    });
    child.on('close', (code, signal) => {
      if (code !== 0) {
        if (/credentials not found/i.test(stdout)) return finish({});
        return finish({ problem: `${program} get failed (${signal ? `signal ${signal}` : `exit status ${code}`})` });
      }
      try {
        const parsed = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
        if (typeof parsed.Username === 'string' && typeof parsed.Secret === 'string' && parsed.Secret !== '') {
          return finish({ credentials: { username: parsed.Username, password: parsed.Secret, source: program } });
        }
        finish({ problem: `${program} get answered without Username and Secret` });
      } catch {
        finish({ problem: `${program} get did not answer with JSON` });
      }
    });
  });
}
