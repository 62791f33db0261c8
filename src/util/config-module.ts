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
  // A .ts config loaded as CommonJS by tsx arrives wrapped once more: `default` is then its
  // exports object, marked __esModule, holding the real default beside any named exports (or
  // none). No config has a key `default`, so a lone `default` key is that wrapper too.
  if (config !== null && typeof config === 'object' && !Array.isArray(config)) {
    const wrapper = config as { default?: unknown; __esModule?: unknown };
    if (wrapper.__esModule === true || ('default' in wrapper && Object.keys(wrapper).length === 1)) config = wrapper.default;
  }
  if (typeof config === 'function') config = await (config as () => unknown)();
  return config;
}
