import { siblingEntry } from '../../util/sibling-entry.js';

/**
 * How the reaper and `macvm gc` delete an Orchard VM whose runner is gone. They run a runtime
 * dir's `cleanup` argv lists (src/vm/runtime-dir.ts VmRecord.cleanup); for orchard that is
 *
 *   node [--import tsx] <this dir>/cleanup-main.(js|ts) '{"controller":…,"vm":…,"configFile":…}'
 *
 * which resolves the credentials again the way the provider did — from the macvm config file,
 * ORCHARD_* variables (the reaper inherits the runner's environment) or an Orchard CLI context —
 * and sends DELETE /v1/vms/{vm}. The token is never written to the runtime dir.
 */
export interface CleanupInfo {
  /** The controller the VM was created on. */
  controller: string;
  vm: string;
  /** The macvm config file the orchard settings came from, if any. */
  configFile?: string;
  /** The Orchard CLI context the settings named, if any. */
  context?: string;
  /** Base for relative paths in the settings (the certificate). */
  cwd?: string;
}

export function cleanupCommand(info: CleanupInfo): string[] {
  const { file, nodeArgs } = siblingEntry(import.meta.url, 'cleanup-main');
  return [process.execPath, ...nodeArgs, file, JSON.stringify(info)];
}

/**
 * The CleanupInfo in a runtime dir's record (the last word of its cleanup command): which
 * controller the VM lives on, its name, and where its settings came from. Undefined for a record
 * the orchard provider did not write.
 */
export function cleanupInfoOf(record: { cleanup?: string[][] }): CleanupInfo | undefined {
  for (const argv of record.cleanup ?? []) {
    if (!argv.some((word) => /cleanup-main\.(js|ts)$/.test(word))) continue;
    try {
      const info = JSON.parse(argv.at(-1) ?? '') as Partial<CleanupInfo>;
      if (typeof info.controller === 'string' && typeof info.vm === 'string') return info as CleanupInfo;
    } catch {
      // not ours
    }
  }
  return undefined;
}
