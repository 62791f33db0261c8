import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate, pickChallenge } from '../../src/oci/www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it("reads ghcr.io's Bearer challenge", () => {
    expect(parseWwwAuthenticate('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:cirruslabs/macos-sonoma-base:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:cirruslabs/macos-sonoma-base:pull' } },
    ]);
  });

  it("reads distribution's challenge with an error and a comma inside a quoted scope", () => {
    const [challenge] = parseWwwAuthenticate(
      'Bearer realm="http://127.0.0.1:1234/token",service="svc",scope="repository:a/b:pull,push",error="insufficient_scope"',
    );
    expect(challenge?.params.scope).toBe('repository:a/b:pull,push');
    expect(challenge?.params.error).toBe('insufficient_scope');
  });

  it('reads Basic, unquoted values, spaces around = and ",", and any case of names', () => {
    expect(parseWwwAuthenticate('BASIC Realm = basic-realm , Charset="UTF-8"')).toEqual([
      { scheme: 'basic', params: { realm: 'basic-realm', charset: 'UTF-8' } },
    ]);
  });

  it('unescapes quoted pairs', () => {
    expect(parseWwwAuthenticate('Bearer realm="a \\"quoted\\" realm, with comma",service=x')[0]?.params).toEqual({
      realm: 'a "quoted" realm, with comma',
      service: 'x',
    });
  });

  it('splits several challenges in one header (RFC 7235)', () => {
    const challenges = parseWwwAuthenticate('Basic realm="registry", Bearer realm="https://auth.example/token",service="registry.example"');
    expect(challenges.map((c) => c.scheme)).toEqual(['basic', 'bearer']);
    expect(challenges[1]?.params.service).toBe('registry.example');
    expect(pickChallenge(challenges)?.scheme).toBe('bearer');
  });

  it('keeps what it can of a damaged header', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://x/token", ="junk", service="s"')[0]?.params).toMatchObject({ realm: 'https://x/token' });
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('Bearer')).toEqual([{ scheme: 'bearer', params: {} }]);
    expect(parseWwwAuthenticate('Bearer realm="unterminated')[0]?.params.realm).toBe('unterminated');
  });

  it('picks Bearer over Basic, and nothing for schemes macvm does not answer', () => {
    expect(pickChallenge(parseWwwAuthenticate('Basic realm=x'))?.scheme).toBe('basic');
    expect(pickChallenge(parseWwwAuthenticate('Negotiate realm=x, Digest realm=y'))).toBeUndefined();
  });
});
