import { pathToFileURL } from 'node:url';

/**
 * Loading a macvm config file, shared by the runner's config (src/runner/config.ts) and the
 * Orchard cleanup, which may read only its `orchard` section (src/vm stays below src/runner).
 */

/** Imports a config module: TypeScript through tsx; JavaScript fresh (not a cached copy). */
export async function importConfigModule(file: string): Promise<Record<string, unknown>> {
  if (/\.m?ts$/.test(file)) {
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  }
  return (await import(`${pathToFileURL(file).href}?t=${Date.now()}`)) as Record<string, unknown>;
}

/** The config a module exports by default: an object, or what a (possibly async) function returns. */
export async function configOfModule(module: Record<string, unknown>): Promise<unknown> {
  let config = module.default;
  // A .ts config loaded as CommonJS by tsx arrives wrapped once more.
  if (config !== null && typeof config === 'object' && !Array.isArray(config) && 'default' in config && Object.keys(config).length === 1) {
    config = (config as { default: unknown }).default;
  }
  if (typeof config === 'function') config = await (config as () => unknown)();
  return config;
}
