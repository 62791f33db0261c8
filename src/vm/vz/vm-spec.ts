import { join } from 'node:path';
import type { TartVmConfig } from './bundle-config.js';
import { BUNDLE_FILES } from './bundle-config.js';

/**
 * What the native addon needs to build one VM (native/src/vm-spec.h reads exactly these keys).
 * Made from a bundle's config.json; sizes in bytes, as Virtualization.framework takes them.
 */
export interface VzVmSpec {
  diskPath: string;
  auxiliaryStoragePath: string;
  /** base64 of VZMacHardwareModel.dataRepresentation */
  hardwareModel: string;
  /** base64 of VZMacMachineIdentifier.dataRepresentation */
  machineIdentifier: string;
  macAddress: string;
  cpuCount: number;
  memorySize: number;
  consoleLogPath?: string;
  diskSync?: 'full' | 'fsync' | 'none';
  displayWidth?: number;
  displayHeight?: number;
  displayPixelsPerInch?: number;
  memoryBalloon?: boolean;
  recovery?: boolean;
}

export interface SpecOverrides {
  cpus?: number;
  memoryMiB?: number;
  consoleLogPath?: string;
  memoryBalloon?: boolean;
}

export function vmSpecFromBundle(bundleDir: string, config: TartVmConfig, overrides: SpecOverrides = {}): VzVmSpec {
  if (config.os !== 'darwin' || !config.hardwareModel || !config.ecid) {
    throw new Error(`vmSpecFromBundle: ${bundleDir} is a ${config.os} bundle; the vz provider boots macOS bundles only.`);
  }
  return {
    diskPath: join(bundleDir, BUNDLE_FILES.disk),
    auxiliaryStoragePath: join(bundleDir, BUNDLE_FILES.nvram),
    hardwareModel: config.hardwareModel,
    machineIdentifier: config.ecid,
    macAddress: config.macAddress,
    // The bundle's minimums are the guest OS's requirements: never go below them.
    cpuCount: Math.max(overrides.cpus ?? config.cpuCount, config.cpuCountMin),
    memorySize: Math.max(overrides.memoryMiB !== undefined ? overrides.memoryMiB * 2 ** 20 : config.memorySize, config.memorySizeMin),
    consoleLogPath: overrides.consoleLogPath,
    diskSync: config.sync,
    displayWidth: config.display.width,
    displayHeight: config.display.height,
    // Tart sizes "pt" displays for the host screen; headless, 72 ppi is Tart's own fallback.
    displayPixelsPerInch: 72,
    memoryBalloon: overrides.memoryBalloon,
  };
}
