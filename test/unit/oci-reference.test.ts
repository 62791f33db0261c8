import { describe, expect, it } from 'vitest';
import { isRegistryReference, manifestReferenceOf, parseImageReference } from '../../src/oci/reference.js';
import { macvmErrorOf } from '../support/macvm-error.js';

const DIGEST = `sha256:${'ab12'.repeat(16)}`;

describe('parseImageReference', () => {
  it.each([
    ['ghcr.io/cirruslabs/macos-sonoma-base:latest', 'ghcr.io', 'cirruslabs/macos-sonoma-base', 'latest', undefined],
    ['ghcr.io/cirruslabs/macos-sonoma-base', 'ghcr.io', 'cirruslabs/macos-sonoma-base', 'latest', undefined],
    ['registry.example:5000/team/linux-test:2026-11', 'registry.example:5000', 'team/linux-test', '2026-11', undefined],
    ['127.0.0.1:5000/a/b/c:v1.2_3-rc', '127.0.0.1:5000', 'a/b/c', 'v1.2_3-rc', undefined],
    ['localhost/x', 'localhost', 'x', 'latest', undefined],
    ['[::1]:5000/x__y/z-1:T', '[::1]:5000', 'x__y/z-1', 'T', undefined],
    [`ghcr.io/org/img@${DIGEST}`, 'ghcr.io', 'org/img', undefined, DIGEST],
    [`ghcr.io/org/img:v2@${DIGEST}`, 'ghcr.io', 'org/img', 'v2', DIGEST],
  ])('%s', (text, registry, repository, tag, digest) => {
    const reference = parseImageReference(text);
    expect(reference.registry).toBe(registry);
    expect(reference.repository).toBe(repository);
    expect(reference.tag).toBe(tag);
    expect(reference.digest).toBe(digest);
    // toString is canonical: the default tag is written out, and it parses back to the same.
    expect(parseImageReference(reference.toString()).toString()).toBe(reference.toString());
    expect(reference.toString()).toBe(tag === 'latest' && !text.includes(':latest') ? `${text}:latest` : text);
  });

  it('asks for the digest when there is one, else the tag', () => {
    expect(manifestReferenceOf(parseImageReference(`ghcr.io/org/img:v2@${DIGEST}`))).toBe(DIGEST);
    expect(manifestReferenceOf(parseImageReference('ghcr.io/org/img:v2'))).toBe('v2');
  });

  it.each([
    ['', 'empty'],
    ['linux-test', 'registry host'],
    ['cirruslabs/macos-sonoma-base:latest', 'registry host'],
    ['https://ghcr.io/org/img:latest', 'without a scheme'],
    ['ghcr.io/', 'repository path'],
    ['ghcr.io/Org/img', '"Org"'],
    ['ghcr.io/org//img', '""'],
    ['ghcr.io/org/img:', 'tag ""'],
    ['ghcr.io/org/img:-bad', 'tag "-bad"'],
    ['ghcr.io/org/img@sha256:abc', 'digest "sha256:abc"'],
    [`ghcr.io/org/img@sha512:${'a'.repeat(64)}`, 'digest'],
    ['ghcr.io:99999/org/img', 'port "99999"'],
    ['ghcr.io:/org/img', 'port ""'],
    ['bad_host.io/org/img', 'host "bad_host.io"'],
    ['ghcr.io/org/img tag', 'white space'],
  ])('refuses %j (%s)', async (text, says) => {
    const error = await macvmErrorOf(() => parseImageReference(text));
    expect(error.code).toBe('MACVM_BAD_ARGUMENT');
    expect(error.message).toContain(says);
    // The message shows what a reference looks like.
    expect(error.hint).toMatch(/host\[:port\]\/repository\[:tag\]/);
  });
});

describe('isRegistryReference', () => {
  it.each([
    'ghcr.io/cirruslabs/macos-sonoma-xcode:latest',
    'registry.example:5000/team/linux-test:2026-11',
    '127.0.0.1:5000/x:y',
    'localhost/x',
    'localhost:5000/x',
    '[::1]:5000/x',
  ])('%s is a registry image', (text) => {
    expect(isRegistryReference(text)).toBe(true);
  });

  it.each([
    'linux-test',
    'sonoma-xcode',
    'linux-test.node-v20.11.1',
    'linux-browser',
    'team/linux-test', // a path without a host: Docker would say Docker Hub; macvm says local
    'localhostish/x',
    '',
  ])('%s stays local', (text) => {
    expect(isRegistryReference(text)).toBe(false);
  });
});
