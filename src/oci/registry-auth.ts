/**
 * Registry authentication as Tart does it, per client (one registry, one repository):
 *
 * - Requests go out with whatever Authorization is known for their access (`pull`, or
 *   `pull,push` for uploads); none at first.
 * - On 401 the `WWW-Authenticate` challenge decides: `Basic` → send the credentials (there must be
 *   some); `Bearer realm,service,scope` → GET the realm with `service` and
 *   `scope=repository:<repo>:<access>`, with Basic credentials when there are any and anonymously
 *   otherwise (public ghcr.io images), and use its `token` (or `access_token`) until it expires.
 * - A second 401, or a 403, is MACVM_REGISTRY_AUTH_FAILED: credentials refused, or demanded and
 *   none found. Never retried.
 *
 * Better than Tart: tokens are kept per access (a pull,push token also serves pulls), several
 * requests that hit a 401 at once fetch one token between them, and credentials are looked up
 * once, only when a registry asks. No message, log or error cause holds a password or token.
 */
import { MacvmError } from '../errors.js';
import type { CredentialLookup, RegistryCredentials } from './registry-credentials.js';
import { discard, isTransientStatus, readBody, registryErrorText, sendRequest, withRetries, type TransportOptions } from './registry-http.js';
import { parseWwwAuthenticate, pickChallenge, type AuthChallenge } from './www-authenticate.js';

export type Access = 'pull' | 'pull,push';

interface Token {
  header: string;
  /** ms since the epoch, already less a safety margin. */
  expiresAt: number;
}

export interface RegistryAuthOptions {
  registry: string;
  repository: string;
  transport: TransportOptions;
  lookupCredentials: () => Promise<CredentialLookup>;
}

export class RegistryAuth {
  private basicHeader: string | undefined;
  private readonly tokens = new Map<Access, Token>();
  private readonly pending = new Map<Access, Promise<void>>();
  private lookup: Promise<CredentialLookup> | undefined;

  constructor(private readonly options: RegistryAuthOptions) {}

  /** The Authorization value to send for `access`, when one is known and unexpired. */
  headerFor(access: Access): string | undefined {
    const now = Date.now();
    for (const candidate of access === 'pull' ? (['pull', 'pull,push'] as const) : (['pull,push'] as const)) {
      const token = this.tokens.get(candidate);
      if (token && now < token.expiresAt) return token.header;
    }
    return this.basicHeader;
  }

  /**
   * Answers a 401 (its WWW-Authenticate header): afterwards headerFor(access) has something to
   * send, or this threw MACVM_REGISTRY_AUTH_FAILED. `sent` is the Authorization the refused
   * request carried. Concurrent calls for one access share one fetch.
   */
  authenticate(wwwAuthenticate: string | undefined, access: Access, sent: string | undefined, signal?: AbortSignal): Promise<void> {
    const running = this.pending.get(access);
    if (running) return running;
    // Another request got its 401 earlier and has already fetched what this one lacked.
    const current = this.headerFor(access);
    if (current !== undefined && current !== sent) return Promise.resolve();
    const work = this.answer(wwwAuthenticate, access, signal).finally(() => this.pending.delete(access));
    this.pending.set(access, work);
    return work;
  }

  /** The error for a 401 after authenticating, or a 403: refused, or demanded and none found. */
  async refused(access: Access, status: number): Promise<MacvmError> {
    const { credentials, problems } = await this.credentials();
    return authFailed(this.options, access, credentials, problems, status === 403 ? 'denied access' : 'refused the request');
  }

  private credentials(): Promise<CredentialLookup> {
    this.lookup ??= this.options.lookupCredentials();
    return this.lookup;
  }

  private async answer(header: string | undefined, access: Access, signal: AbortSignal | undefined): Promise<void> {
    const { registry } = this.options;
    const challenge = header ? pickChallenge(parseWwwAuthenticate(header)) : undefined;
    if (!challenge) {
      throw new MacvmError(
        'MACVM_REGISTRY_AUTH_FAILED',
        header
          ? `${registry} asked for authentication with a scheme macvm does not speak (WWW-Authenticate: ${schemesOf(header)}); macvm answers Basic and Bearer, as Tart does.`
          : `${registry} answered 401 without a WWW-Authenticate header, so there is no way to know how to log in.`,
        { details: { registry } },
      );
    }
    const { credentials, problems } = await this.credentials();
    if (challenge.scheme === 'basic') {
      if (!credentials) throw authFailed(this.options, access, undefined, problems, 'requires credentials');
      this.basicHeader = basic(credentials);
      return;
    }
    const token = await withRetries(() => this.fetchToken(challenge, access, credentials, problems, signal), signal);
    this.tokens.set(access, token);
  }

  private async fetchToken(challenge: AuthChallenge, access: Access, credentials: RegistryCredentials | undefined, problems: string[], signal: AbortSignal | undefined): Promise<Token> {
    const { registry, repository } = this.options;
    const realm = challenge.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new MacvmError('MACVM_REGISTRY_AUTH_FAILED', `${registry} asked for a Bearer token but its realm ${realm === undefined ? 'is missing' : `"${realm}" is not a URL`}.`, {
        details: { registry },
      });
    }
    if (challenge.params.service !== undefined) url.searchParams.set('service', challenge.params.service);
    const ours = `repository:${repository}:${access}`;
    url.searchParams.append('scope', ours);
    // The challenge may name a scope of its own (another repository, for a cross-repo mount): ask for it too.
    const theirs = challenge.params.scope;
    if (theirs && theirs !== ours && !(theirs === `repository:${repository}:pull` && access === 'pull,push')) url.searchParams.append('scope', theirs);

    const doing = `getting a ${access} token for ${registry}/${repository} from ${url.host}`;
    const issuedAt = Date.now();
    const response = await sendRequest(
      { method: 'GET', url, headers: credentials ? { Authorization: basic(credentials) } : {}, signal, doing },
      this.options.transport,
    );
    if (response.status === 401 || response.status === 403) {
      discard(response.body);
      throw authFailed(this.options, access, credentials, problems, credentials ? 'refused the credentials' : 'requires credentials');
    }
    if (response.status !== 200) {
      const said = await registryErrorText(response, doing);
      throw new MacvmError('MACVM_REGISTRY_ERROR', `${doing}: the token service answered HTTP ${response.status}${said ? ` (${said})` : ''}.`, {
        details: { registry, status: response.status, transient: isTransientStatus(response.status) },
      });
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse((await readBody(response, 1024 * 1024, doing)).toString('utf8')) as typeof parsed;
    } catch (error) {
      if (error instanceof MacvmError) throw error;
      throw new MacvmError('MACVM_REGISTRY_AUTH_FAILED', `${doing}: the token service's answer is not JSON.`, { details: { registry } });
    }
    const value = typeof parsed.token === 'string' && parsed.token ? parsed.token : typeof parsed.access_token === 'string' && parsed.access_token ? parsed.access_token : undefined;
    if (!value) {
      throw new MacvmError('MACVM_REGISTRY_AUTH_FAILED', `${doing}: the token service answered without a token or access_token.`, { details: { registry } });
    }
    // The token spec: valid for expires_in seconds (60 when absent) from issue. Counted from when
    // we asked, by our own clock (the issuer's issued_at may be skewed), less a margin so a token
    // never expires between our check and the registry's.
    const lifetimeMs = (typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60) * 1000;
    return { header: `Bearer ${value}`, expiresAt: issuedAt + lifetimeMs - Math.min(10_000, lifetimeMs / 10) };
  }
}

function basic(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

function schemesOf(header: string): string {
  return parseWwwAuthenticate(header).map((c) => c.scheme).join(', ') || 'unreadable';
}

const CREDENTIAL_SOURCES = 'TART_REGISTRY_USERNAME and TART_REGISTRY_PASSWORD (with TART_REGISTRY_HOSTNAME to limit them to one host), or `docker login <host>` (~/.docker/config.json: auths, credHelpers, credsStore)';

function authFailed(
  { registry, repository }: { registry: string; repository: string },
  access: Access,
  credentials: RegistryCredentials | undefined,
  problems: string[],
  what: string,
): MacvmError {
  const wanted = access === 'pull' ? 'pull from' : 'push to';
  const message = credentials
    ? `${registry} ${what} to ${wanted} ${repository} with the credentials of user "${credentials.username}" from ${credentials.source}.`
    : `${registry} ${what === 'denied access' || what === 'refused the request' ? `${what} to ${wanted} ${repository} without credentials` : `requires credentials to ${wanted} ${repository}`}, and none were found${problems.length ? ` (${problems.join('; ')})` : ''}.`;
  const hint = credentials
    ? `Check the user name and password (or token, and that it may ${access === 'pull' ? 'read' : 'write'} packages) in ${credentials.source}. Credentials come from ${CREDENTIAL_SOURCES.replace('<host>', registry)}.`
    : `Give credentials with ${CREDENTIAL_SOURCES.replace('<host>', registry)}. If the image should be public, check the repository name: registries answer this way for one that does not exist, too.`;
  return new MacvmError('MACVM_REGISTRY_AUTH_FAILED', message, { hint, details: { registry, repository, access, credentialSource: credentials?.source } });
}
