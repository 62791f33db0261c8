import { pathToFileURL } from 'node:url';
import { messageOf } from '../../errors.js';
import type { CleanupInfo } from './cleanup.js';
import { resolveController, type ControllerTarget, type OrchardSettings } from './settings.js';

/**
 * How a process that did not create an Orchard VM reaches its controller, from the runtime dir's
 * CleanupInfo alone: the reaper and `macvm gc` (cleanup-main.ts), and `vm exec` / `vm stop` /
 * `vm rm` when the current settings name no controller or another one (attach.ts).
 *
 * The settings of the macvm config file the VM was created with (if it is still readable), with
 * the context the provider read, else the controller the VM lives on — so no other context is
 * read; ORCHARD_* variables apply as usual. Requests always go to `info.controller`.
 */
export async function recordedControllerTarget(info: CleanupInfo, options: { env?: NodeJS.ProcessEnv; warn?: (line: string) => void } = {}): Promise<ControllerTarget> {
  // A config file that is gone or broken now still leaves the ORCHARD_* variables and contexts to try.
  const fromConfig = info.configFile
    ? await orchardSettingsOf(info.configFile).catch((error: unknown) => {
        options.warn?.(`cannot read ${info.configFile}: ${messageOf(error).split('\n')[0]}`);
        return {};
      })
    : {};
  const settings: OrchardSettings = info.context ? { ...fromConfig, context: info.context } : { ...fromConfig, controller: info.controller };
  const target = await resolveController(settings, { env: options.env, cwd: info.cwd });
  return { ...target, url: info.controller };
}

/**
 * The `orchard` section of a macvm config file, imported as src/runner/config.ts does it (tsx
 * for TypeScript; a default export that is an object or a function returning one). Only that
 * section is read; the runner's own config module is not imported (src/vm stays below src/runner).
 */
export async function orchardSettingsOf(file: string): Promise<OrchardSettings> {
  let module: Record<string, unknown>;
  if (/\.m?ts$/.test(file)) {
    const { tsImport } = await import('tsx/esm/api');
    module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  } else {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  }
  let config = module.default;
  if (config && typeof config === 'object' && 'default' in config && Object.keys(config).length === 1) config = (config as { default: unknown }).default;
  if (typeof config === 'function') config = await (config as () => unknown)();
  const orchard = (config as { orchard?: unknown } | undefined)?.orchard;
  return orchard && typeof orchard === 'object' ? (orchard as OrchardSettings) : {};
}
