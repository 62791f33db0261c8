import { MacvmError } from '../../errors.js';
import type { ImageSshSettings } from '../credentials.js';
import { certificateServerName, readCertificate } from './certificate.js';
import { orchardConfigPath, readOrchardContexts } from './orchard-config-file.js';
import { checkOrchardSettings } from './settings-rule.js';

/**
 * How macvm finds and trusts an Orchard controller (cirruslabs/orchard), as users write it in
 * macvm.config.ts under `orchard`. The same facts Orchard's own CLI keeps in a "context"
 * (internal/config/context.go: url, certificate, serviceAccountName, serviceAccountToken),
 * resolved the way its client does (pkg/client/client.go, internal/config/handle.go):
 *
 *   1. an Orchard CLI context from $ORCHARD_HOME/.orchard/orchard.yml (`context`, or the CLI's
 *      default context when neither `controller` nor ORCHARD_URL names a controller);
 *   2. what macvm.config.ts says (`controller`, `serviceAccount`, `certificate`);
 *   3. the environment variables Orchard's CLI reads (internal/config/env.go): ORCHARD_URL,
 *      ORCHARD_SERVICE_ACCOUNT_NAME, ORCHARD_SERVICE_ACCOUNT_TOKEN. An empty variable counts as
 *      unset (as MACVM_* variables do), since CI systems often define them empty.
 */
export interface OrchardSettings {
  /**
   * The controller's address, as given to `orchard context create`: "orchard.example",
   * "orchard.example:6120" or "https://orchard.example:6120". Without a scheme it is https; without a
   * port it is 6120 (internal/netconstants/netconstants.go NormalizeAddress). Env: ORCHARD_URL (used
   * as is, like Orchard's client does: give the scheme and port).
   */
  controller?: string;
  /**
   * The service account to authenticate as (HTTP basic auth, name:token). It needs the roles
   * compute:read and compute:write. Env: ORCHARD_SERVICE_ACCOUNT_NAME / ORCHARD_SERVICE_ACCOUNT_TOKEN
   * (prefer these for the token: a token in macvm.config.ts is in your repository). Never logged.
   */
  serviceAccount?: { name: string; token: string };
  /** Read controller, certificate and service account from this Orchard CLI context (~/.orchard/orchard.yml). */
  context?: string;
  /**
   * The controller's certificate (PEM text, or the path of a PEM file): trusted alone, instead of
   * the system's CAs — what `orchard context create` stores when the controller's certificate is
   * self-signed. Its first DNS name is the name checked (Orchard's own controller certificate names
   * "orchard-controller"), whatever host the URL uses.
   */
  certificate?: string;
  /** Run VMs without graphics (Orchard's VMSpec `headless`). Default true. */
  headless?: boolean;
  /** Worker labels a VM requires (VMSpec `labels`), e.g. { model: 'macstudio' }. */
  labels?: Record<string, string>;
  /** Worker resources a VM requires (VMSpec `resources`), e.g. { 'org.cirruslabs.logical-cores': 4 }. */
  resources?: Record<string, number>;
  /** VMSpec `imagePullPolicy`. Default: the controller's (IfNotPresent). */
  imagePullPolicy?: 'IfNotPresent' | 'Always';
  /** Accept any guest host key (never for shared machines). Images without hostKey are refused otherwise. */
  insecureAcceptAnyHostKey?: boolean;
}

/** Per image: how to log in (pinned host key), and which Orchard image to run (`source`). */
export interface OrchardImageSettings extends ImageSshSettings {
  /** The image Orchard's workers run, e.g. "ghcr.io/cirruslabs/macos-sonoma-base:latest". Default: the image name itself. */
  source?: string;
}

/** What the provider is handed (src/runner/suite-vm.ts providerSettings()). */
export interface OrchardProviderSettings extends OrchardSettings {
  /** Per image name; "*" applies to every image. */
  images?: Record<string, OrchardImageSettings>;
  /**
   * The macvm config file these settings came from. Recorded in a VM's cleanup command so the
   * reaper and `macvm gc` can read the credentials again to delete the VM — the token itself is
   * never written to the runtime dir.
   */
  configFile?: string;
}

/** Orchard's default controller port (internal/netconstants/netconstants.go). */
export const DEFAULT_CONTROLLER_PORT = 6120;

export const ENV_URL = 'ORCHARD_URL';
export const ENV_SERVICE_ACCOUNT_NAME = 'ORCHARD_SERVICE_ACCOUNT_NAME';
export const ENV_SERVICE_ACCOUNT_TOKEN = 'ORCHARD_SERVICE_ACCOUNT_TOKEN';

/** A controller as the client needs it. The token is only ever sent as basic auth. */
export interface ControllerTarget {
  /** Normalised base URL without a trailing slash, e.g. "https://orchard.example:6120" (a path prefix is kept). */
  url: string;
  serviceAccount?: { name: string; token: string };
  /** PEM of the one certificate to trust instead of the system CAs. */
  certificatePem?: string;
  /** TLS server name to verify: the pinned certificate's first DNS name. */
  serverName?: string;
  /** Where each part came from, for messages (never the token). */
  origin: { url: string; serviceAccount?: string; certificate?: string };
  /** The Orchard CLI context read, if one was. */
  context?: string;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Base for a relative certificate path (the project root). */
  cwd?: string;
}

/** True when the config or the environment names an Orchard controller (doctor checks only then). */
export function orchardConfigured(settings: OrchardSettings | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(settings?.controller || settings?.context || nonEmpty(env[ENV_URL]));
}

/**
 * Resolves which controller to talk to and how (see OrchardSettings for the order). Throws
 * MACVM_CONFIG_INVALID naming the key when something is missing or malformed.
 */
export async function resolveController(settings: OrchardSettings = {}, options: ResolveOptions = {}): Promise<ControllerTarget> {
  const env = options.env ?? process.env;
  checkOrchardSettings(settings);
  let url: string | undefined;
  let urlOrigin = '';
  let serviceAccount: { name: string; token: string } | undefined;
  let accountOrigin: string | undefined;
  let certificatePem: string | undefined;
  let certificateOrigin: string | undefined;
  let contextName: string | undefined;

  // 1. An Orchard CLI context: the named one, or the CLI's default when nothing else names a controller.
  const envUrl = nonEmpty(env[ENV_URL]);
  if (settings.context || (!settings.controller && !envUrl)) {
    const contexts = await readOrchardContexts(env);
    const name = settings.context ?? contexts?.defaultContext;
    const context = name ? contexts?.contexts[name] : undefined;
    if (settings.context && !context) {
      throw invalid(
        'context',
        `names the Orchard context "${settings.context}", which ${contexts ? `is not in ${contexts.path}` : `cannot be read: ${orchardConfigPath(env)} does not exist`}`,
        contexts && Object.keys(contexts.contexts).length ? `Known contexts: ${Object.keys(contexts.contexts).join(', ')} (see \`orchard context list\`).` : 'Create it with `orchard context create <controller>`.',
      );
    }
    if (context && name) {
      contextName = name;
      const where = `Orchard context "${name}" (${contexts!.path})`;
      if (context.url) {
        url = context.url;
        urlOrigin = where;
      }
      if (context.serviceAccountName && context.serviceAccountToken) {
        serviceAccount = { name: context.serviceAccountName, token: context.serviceAccountToken };
        accountOrigin = where;
      }
      if (context.certificate) {
        certificatePem = context.certificate;
        certificateOrigin = where;
      }
    }
  }

  // 2. macvm.config.ts
  if (settings.controller) {
    url = normaliseControllerAddress(settings.controller, 'orchard.controller');
    urlOrigin = 'orchard.controller';
  }
  if (settings.serviceAccount) {
    serviceAccount = { name: settings.serviceAccount.name, token: settings.serviceAccount.token };
    accountOrigin = 'orchard.serviceAccount';
  }
  if (settings.certificate) {
    certificatePem = await readCertificate(settings.certificate, options.cwd);
    certificateOrigin = 'orchard.certificate';
  }

  // 3. Orchard's own environment variables override (internal/config/handle.go DefaultContext).
  if (envUrl) {
    url = checkEnvUrl(envUrl);
    urlOrigin = ENV_URL;
  }
  const envName = nonEmpty(env[ENV_SERVICE_ACCOUNT_NAME]);
  const envToken = nonEmpty(env[ENV_SERVICE_ACCOUNT_TOKEN]);
  if (envName || envToken) {
    const name = envName ?? serviceAccount?.name;
    const token = envToken ?? serviceAccount?.token;
    if (!name || !token) {
      throw new MacvmError('MACVM_CONFIG_INVALID', `${envName ? ENV_SERVICE_ACCOUNT_NAME : ENV_SERVICE_ACCOUNT_TOKEN} is set but ${envName ? ENV_SERVICE_ACCOUNT_TOKEN : ENV_SERVICE_ACCOUNT_NAME} is not (and the config gives none).`, {
        hint: 'Set both, or neither.',
        details: { key: envName ? ENV_SERVICE_ACCOUNT_TOKEN : ENV_SERVICE_ACCOUNT_NAME },
      });
    }
    serviceAccount = { name, token };
    accountOrigin = envName && envToken ? `${ENV_SERVICE_ACCOUNT_NAME}/${ENV_SERVICE_ACCOUNT_TOKEN}` : envName ? ENV_SERVICE_ACCOUNT_NAME : ENV_SERVICE_ACCOUNT_TOKEN;
  }

  if (!url) {
    throw invalid(
      'controller',
      'is not set, and neither ORCHARD_URL nor an Orchard CLI context names a controller',
      "Set orchard: { controller: 'orchard.example:6120' } in macvm.config.ts, or ORCHARD_URL, or run `orchard context create <controller>`.",
    );
  }
  let serverName: string | undefined;
  if (certificatePem) {
    if (!url.startsWith('https:')) {
      throw invalid('certificate', `is set but the controller ${url} is not https`, 'Use an https:// controller address, or drop the certificate.');
    }
    serverName = certificateServerName(certificatePem, certificateOrigin ?? 'orchard.certificate');
  }
  return {
    url,
    serviceAccount,
    certificatePem,
    serverName,
    origin: { url: urlOrigin, serviceAccount: accountOrigin, certificate: certificateOrigin },
    context: contextName,
  };
}

/**
 * `orchard context create`'s address rules (internal/netconstants/netconstants.go NormalizeAddress):
 * no scheme → https, no port → 6120. A path (an API prefix behind a proxy) is kept.
 */
export function normaliseControllerAddress(address: string, key = 'orchard.controller'): string {
  const text = address.trim();
  const withScheme = /^https?:\/\//i.test(text) ? text : `https://${text}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw invalidKey(key, `is not a controller address (expected "orchard.example:6120" or "https://orchard.example:6120", got ${JSON.stringify(address)})`);
  }
  if (parsed.username || parsed.password) throw invalidKey(key, 'must not carry credentials in the URL: use orchard.serviceAccount');
  // WHATWG URL forgets an explicit default port (":443"); Go's url.Parse keeps it, so look at the text.
  const explicitPort = /^https?:\/\/(?:\[[^\]]*\]|[^/:?#]*):(\d+)/i.exec(withScheme)?.[1];
  const port = explicitPort ?? String(DEFAULT_CONTROLLER_PORT);
  return `${parsed.protocol}//${parsed.hostname}:${Number(port)}${parsed.pathname.replace(/\/+$/, '')}`;
}

/** ORCHARD_URL is used as Orchard's client uses it: as is, http or https only (pkg/client/client.go New). */
function checkEnvUrl(value: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw invalidKey(ENV_URL, `is not a URL (got ${JSON.stringify(value)})`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidKey(ENV_URL, `must be an http:// or https:// URL, as for Orchard's CLI (got ${JSON.stringify(value)})`);
  }
  if (parsed.username || parsed.password) throw invalidKey(ENV_URL, `must not carry credentials: use ${ENV_SERVICE_ACCOUNT_NAME} / ${ENV_SERVICE_ACCOUNT_TOKEN}`);
  return stripSlash(parsed);
}

function stripSlash(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}


function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function invalid(key: string, problem: string, hint?: string): MacvmError {
  return invalidKey(`orchard.${key}`, problem, hint);
}

function invalidKey(key: string, problem: string, hint?: string): MacvmError {
  return new MacvmError('MACVM_CONFIG_INVALID', `${key} ${problem}.`, { hint, details: { key } });
}
