import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { MacvmError } from '../errors.js';

/**
 * Where baselines live. Tokens:
 *   {specDir}   absolute directory of the spec file          (alias {testDir})
 *   {specName}  the spec's file name, e.g. cart.spec.ts      (alias {testFileName})
 *   {specPath}  the spec's path relative to the project root (alias {testFilePath})
 *   {name}      the snapshot name                            (alias {arg})
 *   {env}       a key of the environment (provider, OS, build, GPU, display) for per-environment baselines
 *   {provider}  the provider ('qemu', 'vz', ... or 'host')
 *   {platform}  the host's process.platform
 *   {ext}       '.png'
 * A relative result is resolved against the project root.
 */
export const DEFAULT_PATH_TEMPLATE = '{specDir}/__image_snapshots__/{specName}/{name}.png';

export interface PathContext {
  /** Absolute path of the spec file. */
  specPath: string;
  /** Project root (vitest's root; process.cwd() by default). */
  root: string;
  name: string;
  envKey: string;
  provider?: string;
}

export function resolveBaselinePath(template: string, context: PathContext): string {
  const specRelative = safeRelative(context.root, context.specPath);
  const values: Record<string, string> = {
    specDir: dirname(context.specPath),
    specName: basename(context.specPath),
    specPath: specRelative,
    name: context.name,
    env: context.envKey,
    provider: context.provider ?? 'host',
    platform: process.platform,
    ext: '.png',
  };
  values.testDir = values.specDir!;
  values.testFileName = values.specName!;
  values.testFilePath = values.specPath!;
  values.arg = values.name!;
  const path = template.replace(/\{([^}]*)\}/g, (_match, token: string) => {
    const value = values[token];
    if (value === undefined) {
      throw new MacvmError('MACVM_CONFIG_INVALID', `The snapshot path template "${template}" uses an unknown token {${token}}.`, {
        hint: `Known tokens: ${Object.keys(values).map((t) => `{${t}}`).join(' ')}.`,
      });
    }
    return value;
  });
  return resolve(context.root, path);
}

/** A path below the root for use inside reports/ (no "..", no absolute prefix). */
export function safeRelative(root: string, path: string): string {
  const rel = relative(root, path);
  const inside = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : basename(path);
  return inside.split(sep).join('/');
}

/**
 * Snapshot names become file names: keep letters, digits, dot, dash, underscore and '/'
 * (sub-folders), replace the rest, and refuse anything that climbs out with "..".
 */
export function sanitizeName(name: string): string {
  const cleaned = name
    .replace(/\.png$/i, '')
    .replace(/[^A-Za-z0-9._/-]+/g, '-')
    .replace(/\/{2,}/g, '/')
    .replace(/^[-/]+|[-/]+$/g, '');
  if (!cleaned || cleaned.split('/').some((part) => part === '..' || part === '.')) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `"${name}" cannot be used as a snapshot name.`, {
      hint: 'Use letters, digits, ".", "-", "_" and "/" for sub-folders; no "..".',
    });
  }
  return cleaned;
}

/** The default name: the test's full name as a slug, plus a per-test counter (as Playwright does). */
export function defaultSnapshotName(testName: string, counter: number): string {
  const slug = testName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 100);
  return `${slug || 'snapshot'}-${counter}`;
}
