/**
 * The `WWW-Authenticate` header of a registry's 401 (RFC 7235 challenges, RFC 6750 for Bearer):
 *
 *   Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:org/img:pull"
 *   Basic realm="basic-realm"
 *
 * Tart splits on the first space and on commas outside quotes; this does the same and also
 * understands quoted-pair escapes (`\"`), spaces around `=` and `,`, and several
 * challenges in one header (`Basic realm="x", Bearer realm="y"`), which RFC 7235 allows.
 * Scheme and parameter names are case-insensitive: both come back lower-case.
 */
export interface AuthChallenge {
  /** Lower-case: `basic`, `bearer`, … */
  scheme: string;
  /** Parameter names lower-case, values unquoted. */
  params: Record<string, string>;
}

export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let index = 0;
  const text = header;
  const skip = (pattern: RegExp) => {
    while (index < text.length && pattern.test(text[index]!)) index += 1;
  };
  const readToken = (): string => {
    const start = index;
    skip(/[!#$%&'*+.^_`|~0-9A-Za-z-]/);
    return text.slice(start, index);
  };
  const readQuoted = (): string => {
    // At the opening quote.
    index += 1;
    let value = '';
    while (index < text.length && text[index] !== '"') {
      if (text[index] === '\\' && index + 1 < text.length) index += 1;
      value += text[index];
      index += 1;
    }
    index += 1; // the closing quote (or past the end of an unterminated value)
    return value;
  };

  while (index < text.length) {
    skip(/[\s,]/);
    const scheme = readToken();
    if (!scheme) {
      // Not a token where a scheme must be: skip to the next comma so one bad part does not hide the rest.
      while (index < text.length && text[index] !== ',') index += 1;
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skip(/[ \t]/);

    // Parameters: name = value pairs separated by commas, until a token that is not followed by
    // "=" starts the next challenge. (token68 credentials, `Negotiate abc==`, are not a registry's.)
    for (;;) {
      skip(/[\s,]/);
      if (index >= text.length) break;
      const mark = index;
      const name = readToken();
      skip(/[ \t]/);
      if (!name || text[index] !== '=') {
        index = mark;
        break;
      }
      index += 1; // '='
      skip(/[ \t]/);
      const value = text[index] === '"' ? readQuoted() : readToken();
      challenge.params[name.toLowerCase()] = value;
    }
    if (index < text.length && text[index] !== ',' && !/[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(text[index]!)) {
      // Garbage where a parameter or a scheme must be: drop it up to the next comma.
      while (index < text.length && text[index] !== ',') index += 1;
    }
  }
  return challenges;
}

/** The challenge the client answers: Bearer when offered, else Basic; undefined for neither. */
export function pickChallenge(challenges: readonly AuthChallenge[]): AuthChallenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}
