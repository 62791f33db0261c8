import { messageOf } from '../../errors.js';
import { configOfModule, importConfigModule } from '../../util/config-module.js';
import type { CleanupInfo } from './cleanup.js';
import { resolveController, type ControllerTarget, type OrchardProviderSettings, type OrchardSettings } from './settings.js';

/**
 * The controller a process that did not create the VM talks to (`vm exec` / `vm stop` / `vm rm`,
 * attach.ts): always the one the record names. The configured settings (macvm.config.ts,
 * ORCHARD_* variables, an Orchard CLI context, resolved as the provider does) are used when they
 * resolve to that same controller; otherwise — no settings, or settings for another controller,
 * whose token must never be sent elsewhere — what the VM was created with, as the reaper reads it.
 */
export async function controllerForRecord(info: CleanupInfo, settings: OrchardProviderSettings | undefined, options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ControllerTarget> {
  const env = options.env ?? process.env;
  if (settings) {
    const target = await resolveController(settings, { env, cwd: options.cwd }).catch(() => undefined);
    if (target?.url === info.controller) return target;
  }
  return recordedControllerTarget(info, { env });
}

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
 * The `orchard` section of a macvm config file, loaded as src/runner/config.ts loads it
 * (src/util/config-module.ts). Only that section is read; the runner's config validation is
 * not imported (src/vm stays below src/runner).
 */
export async function orchardSettingsOf(file: string): Promise<OrchardSettings> {
  const config = await configOfModule(await importConfigModule(file));
  const orchard = (config as { orchard?: unknown } | undefined)?.orchard;
  return orchard && typeof orchard === 'object' ? (orchard as OrchardSettings) : {};
}
