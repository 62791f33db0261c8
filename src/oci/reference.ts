/**
 * Image references as users write them: `host[:port]/repo/path[:tag][@sha256:<hex>]`.
 *
 * The host is always explicit (as in Tart: `ghcr.io/cirruslabs/macos-sonoma-base:latest`); there
 * is no implicit Docker Hub, so a plain name (`linux-test`, `sonoma-xcode`) is a local image and
 * never a registry one. isRegistryReference() is that rule, the one Docker uses to tell a registry
 * host from a repository path component: a first part with a `.` or a `:`, or `localhost`.
 *
 * Repository paths follow the OCI distribution spec (lower case, separators `.`, `_`, `__`, `-`),
 * tags its tag rule: a registry refuses anything else anyway, and failing here names the bad part.
 */
import { MacvmError } from '../errors.js';

export interface ImageReference {
  /** `host` or `host:port` (an IPv6 host in brackets: `[::1]:5000`). */
  readonly registry: string;
  /** The repository path within the registry: `cirruslabs/macos-sonoma-base`. */
  readonly repository: string;
  /** `latest` when the text names neither a tag nor a digest. */
  readonly tag?: string;
  /** `sha256:<64 hex>`; when both are given the digest decides what is fetched. */
  readonly digest?: string;
  /** The canonical text: `host/repo:tag`, `host/repo@sha256:…` or `host/repo:tag@sha256:…`. */
  toString(): string;
}

export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const PATH_COMPONENT_PATTERN = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const HOST_NAME_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const IPV6_HOST_PATTERN = /^\[[0-9A-Fa-f:.]+\]$/;
const PORT_PATTERN = /^[0-9]{1,5}$/;

const SHAPE = 'A registry image reference looks like host[:port]/repository[:tag][@sha256:<64 hex digits>], e.g. ghcr.io/cirruslabs/macos-sonoma-base:latest or 127.0.0.1:5000/team/linux-test:2026-11';

/**
 * Whether `text` names an image in a registry (its first path part is a registry host) rather
 * than a local image. Says nothing about whether the rest parses: parseImageReference does that.
 */
export function isRegistryReference(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash <= 0) return false;
  const first = text.slice(0, slash);
  return first === 'localhost' || first.includes('.') || first.includes(':');
}

/** Parses a registry reference; anything else is MACVM_BAD_ARGUMENT naming the bad part. */
export function parseImageReference(text: string): ImageReference {
  const bad = (what: string): never => {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `"${text}" is not an image reference: ${what}.`, { hint: SHAPE });
  };
  if (typeof text !== 'string' || text.trim() === '') bad('it is empty');
  if (/\s/.test(text)) bad('it contains white space');
  if (/^[a-z]+:\/\//i.test(text)) bad('write the registry host without a scheme (no http:// or https://)');

  const slash = text.indexOf('/');
  if (slash <= 0 || !isRegistryReference(text)) {
    bad('it does not start with a registry host (a name with a dot or a port, or localhost), followed by "/"');
  }
  const registry = text.slice(0, slash);
  let rest = text.slice(slash + 1);
  checkRegistryHost(registry, bad);

  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_PATTERN.test(digest)) bad(`the digest "${digest}" is not sha256: followed by 64 lower-case hex digits`);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_PATTERN.test(tag)) bad(`the tag "${tag}" may hold only letters, digits, ".", "_" and "-" (at most 128, not starting with "." or "-")`);
  }

  const repository = rest;
  if (repository === '') bad('the repository path after the host is empty');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT_PATTERN.test(component)) {
      bad(`the repository part "${component}" must be lower-case letters and digits, separated by ".", "_", "__" or "-"`);
    }
  }
  if (repository.length > 255) bad('the repository path is longer than 255 characters');

  return makeReference(registry, repository, tag ?? (digest ? undefined : 'latest'), digest);
}

/** The tag or digest to ask the registry for: the digest when there is one. */
export function manifestReferenceOf(reference: ImageReference): string {
  return reference.digest ?? reference.tag ?? 'latest';
}

function makeReference(registry: string, repository: string, tag: string | undefined, digest: string | undefined): ImageReference {
  const text = `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return Object.freeze({
    registry,
    repository,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
    toString: () => text,
  });
}

function checkRegistryHost(registry: string, bad: (what: string) => never): void {
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    host = registry.slice(0, close + 1);
    const after = registry.slice(close + 1);
    if (close < 0 || (after !== '' && !after.startsWith(':'))) bad(`the registry host "${registry}" is not a bracketed IPv6 address`);
    if (after.startsWith(':')) port = after.slice(1);
    if (!IPV6_HOST_PATTERN.test(host)) bad(`the registry host "${registry}" is not a bracketed IPv6 address`);
  } else {
    const colon = registry.indexOf(':');
    if (colon >= 0) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
    if (!HOST_NAME_PATTERN.test(host)) bad(`the registry host "${host}" is not a host name or IPv4 address`);
  }
  if (port !== undefined && (!PORT_PATTERN.test(port) || Number(port) < 1 || Number(port) > 65_535)) {
    bad(`the registry port "${port}" is not a number from 1 to 65535`);
  }
}
