import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MacvmError } from '../../errors.js';
import type { VzVmSpec } from './vm-spec.js';
import type { WireError } from './vmhost-protocol.js';

/** The surface of native/ (macvm_vz.node), as native/src/*.h document it. */
export interface RestoreImageInfo {
  url: string;
  buildVersion: string;
  osVersion: string;
  /** A configuration this host can run exists (mostFeaturefulSupportedConfiguration, hardwareModel.supported). */
  supported: boolean;
  minimumCpuCount?: number;
  minimumMemoryBytes?: number;
  hardwareModel?: string;
}

export type VzVmEvent =
  | { type: 'state'; state: string }
  | { type: 'stopped'; reason: 'guest' }
  | { type: 'stopped'; reason: 'error'; error: Error & Partial<WireError> };

export interface VzVirtualMachine {
  start(): Promise<void>;
  requestStop(): Promise<void>;
  stop(): Promise<void>;
  state(): Promise<string>;
  close(): void;
}

export interface VzAddon {
  isSupported(): boolean;
  /** VZVirtualMachineConfiguration.maximumAllowedCPUCount (absent from an older build of the addon). */
  readonly maximumAllowedCPUCount?: number;
  /** VZVirtualMachineConfiguration.minimumAllowedMemorySize, in bytes. */
  readonly minimumAllowedMemorySize?: number;
  loadRestoreImage(path: string): Promise<RestoreImageInfo>;
  fetchLatestRestoreImage(): Promise<RestoreImageInfo>;
  newMachineIdentifier(): string;
  createAuxiliaryStorage(path: string, hardwareModel: string): void;
  installMacOS(spec: VzVmSpec, ipswPath: string, onProgress: (fraction: number) => void): Promise<void>;
  VirtualMachine: new (spec: VzVmSpec, onEvent: (event: VzVmEvent) => void) => VzVirtualMachine;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository (or installed package) root: src/vm/vz or dist/src/vm/vz → up to it. */
export function packageRoot(): string {
  for (let dir = here; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
  }
  return resolve(here, '..', '..', '..');
}

export function defaultAddonPath(): string {
  return join(packageRoot(), 'native', 'build', 'Release', 'macvm_vz.node');
}

/** Loads the addon; MACVM_VZ_ADDON points elsewhere (tests load a stand-in through it). */
export function loadVzAddon(path = process.env.MACVM_VZ_ADDON || defaultAddonPath()): VzAddon {
  try {
    return createRequire(import.meta.url)(path) as VzAddon;
  } catch (error) {
    throw new MacvmError('MACVM_NATIVE_ADDON_MISSING', `The Virtualization.framework addon could not be loaded from ${path}.`, {
      hint:
        process.platform === 'darwin' && process.arch === 'arm64'
          ? 'Build it with `node scripts/build-native.mjs` (needs Xcode command line tools and node-addon-api).'
          : 'The vz provider runs only on Apple Silicon Macs; use the qemu provider here.',
      cause: error,
    });
  }
}
