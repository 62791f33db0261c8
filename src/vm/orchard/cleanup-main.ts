/**
 * `node cleanup-main.js '<json CleanupInfo>'`: deletes one Orchard VM (see ./cleanup.ts).
 * Exit 0 when the VM is gone (deleted now, or already), 1 otherwise, with the reason on stderr
 * (never the token).
 */
import { pathToFileURL } from 'node:url';
import { messageOf } from '../../errors.js';
import type { CleanupInfo } from './cleanup.js';
import { OrchardClient, orchardError } from './client.js';
import { resolveController, type OrchardSettings } from './settings.js';

async function main(): Promise<number> {
  const info = JSON.parse(process.argv[2] ?? '{}') as Partial<CleanupInfo>;
  if (!info.controller || !info.vm) {
    process.stderr.write('usage: cleanup-main \'{"controller":"https://…","vm":"macvm-…"}\'\n');
    return 2;
  }
  // A config file that is gone or broken now still leaves the ORCHARD_* variables and contexts to try.
  const fromConfig = info.configFile
    ? await orchardSettingsOf(info.configFile).catch((error: unknown) => {
        process.stderr.write(`warning: cannot read ${info.configFile}: ${messageOf(error).split('\n')[0]}\n`);
        return {};
      })
    : {};
  // The context the provider read (named, or the Orchard CLI's default), else the controller the
  // VM lives on, so no other context is read; the request goes to that controller either way.
  const settings: OrchardSettings = info.context ? { ...fromConfig, context: info.context } : { ...fromConfig, controller: info.controller };
  const target = await resolveController(settings, { cwd: info.cwd });
  const client = new OrchardClient({ ...target, url: info.controller });
  try {
    const existed = await client.deleteVm(info.vm, AbortSignal.timeout(30_000));
    process.stdout.write(`${existed ? 'deleted' : 'already gone'}: Orchard VM ${info.vm} on ${info.controller}\n`);
    return 0;
  } catch (error) {
    // One line: `macvm gc` and the reaper's log keep only the end of stderr.
    process.stderr.write(`${orchardError(error, { client, action: `delete VM "${info.vm}"`, fallback: 'MACVM_STOP_FAILED', vm: info.vm }).message.split('\n')[0]}\n`);
    return 1;
  }
}

/**
 * The `orchard` section of a macvm config file, imported as src/runner/config.ts does it (tsx
 * for TypeScript; a default export that is an object or a function returning one). Only that
 * section is read; the runner's own config module is not imported (src/vm stays below src/runner).
 */
async function orchardSettingsOf(file: string): Promise<OrchardSettings> {
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

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${messageOf(error).split('\n')[0]}\n`);
    process.exit(1);
  },
);
