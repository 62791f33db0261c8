import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MacvmError } from '../../src/errors.js';
import { resolveConfig } from '../../src/runner/config.js';
import { pinnedCredentials } from '../../src/vm/credentials.js';
import { configPathProblem, configPathsIn, errorTextsOf } from '../support/config-paths.js';

const SRC = join(import.meta.dirname, '../../src');

function sourceFiles(): string[] {
  return (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
}

describe('config keys named in messages and hints', () => {
  it('every config path an error message or hint in src/ names is one the schema accepts', () => {
    const bad: string[] = [];
    let seen = 0;
    for (const file of sourceFiles()) {
      for (const text of errorTextsOf(readFileSync(join(SRC, file), 'utf8'), file)) {
        for (const path of configPathsIn(text)) {
          seen += 1;
          const problem = configPathProblem(path);
          if (problem) bad.push(`${file}: ${path}: ${problem}`);
        }
      }
    }
    expect(bad).toEqual([]);
    // The scan finds the hints it is there for (qemu.accelerator, images.<name>.ssh.hostKey, …).
    expect(seen).toBeGreaterThan(10);
    // Parses every source file: seconds on a loaded host, more than the 5 s default allows.
  }, 60_000);

  it('the check fails on keys nobody can write', () => {
    expect(configPathProblem('providers.tart.images["sonoma"].hostKey')).toMatch(/"providers" is not a key/);
    expect(configPathProblem('images["*"].ssh.hostKey')).toMatch(/"\*" is not an image name/);
    expect(configPathProblem('images.<name>.hostKey')).toMatch(/"hostKey" is not a key/);
    expect(configPathProblem('images.<name>.ssh.hostKey')).toBeUndefined();
  });

  it.each(['vz', 'tart'] as const)('%s: the missing-host-key hint names keys a config can set, and a config setting them is valid', (provider) => {
    let error: unknown;
    try {
      pinnedCredentials(provider, 'sonoma', {});
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MacvmError);
    const paths = configPathsIn((error as MacvmError).hint ?? '');
    expect(paths).toEqual(['images["sonoma"].ssh.hostKey', `${provider}.insecureAcceptAnyHostKey`]);
    for (const path of paths) expect(configPathProblem(path)).toBeUndefined();
    // What the hint says to write is accepted by the real validator.
    const config = resolveConfig({ [provider]: { insecureAcceptAnyHostKey: true }, images: { sonoma: { ssh: { user: 'admin', hostKey: 'ssh-ed25519 AAAA' } } } }, { root: SRC, env: {} });
    expect(config.providers[provider]).toEqual({ insecureAcceptAnyHostKey: true });
  });
});
