import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { normalizeMac } from './mac-address.js';

/**
 * A Tart-compatible VM bundle: a directory with `config.json`, `disk.img` and `nvram.bin`,
 * so bundles made by Tart (`tart create`, `tart pull`) boot unchanged, and ours open in Tart.
 *
 * config.json is Tart's VMConfig (cirruslabs/tart Sources/tart/VMConfig.swift and
 * Platform/Darwin.swift): `version`, `os` ("darwin" | "linux", default darwin), `arch`
 * ("arm64" | "amd64", default arm64), `cpuCountMin`, `cpuCount`, `memorySizeMin`,
 * `memorySize` (bytes), `macAddress`, `display` {width, height, unit?: "pt" | "px"},
 * `displayRefit?`, `diskFormat` ("raw" | "asif", default raw), and for darwin `ecid`
 * (base64 of VZMacMachineIdentifier.dataRepresentation) and `hardwareModel` (base64 of
 * VZMacHardwareModel.dataRepresentation). Older Tart wrote `sync` ("none" | "fsync" | "full").
 */
export const BUNDLE_FILES = { config: 'config.json', disk: 'disk.img', nvram: 'nvram.bin' } as const;

export interface TartVmConfig {
  version: number;
  os: 'darwin' | 'linux';
  arch: 'arm64' | 'amd64';
  cpuCountMin: number;
  cpuCount: number;
  memorySizeMin: number;
  memorySize: number;
  macAddress: string;
  display: { width: number; height: number; unit?: 'pt' | 'px' };
  displayRefit?: boolean;
  diskFormat: 'raw' | 'asif';
  sync?: 'none' | 'fsync' | 'full';
  ecid?: string;
  hardwareModel?: string;
  /** Every key as read, so rewriting the file keeps what Tart put there and we do not know. */
  raw: Record<string, unknown>;
}

export function parseTartConfig(text: string, where: string = BUNDLE_FILES.config): TartVmConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw corrupt(where, `is not JSON (${(error as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(where, 'is not a JSON object');
  const obj = raw as Record<string, unknown>;
  const int = (key: string): number => {
    const value = obj[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw corrupt(where, `needs "${key}" as a whole number, got ${JSON.stringify(value)}`);
    return value;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => {
    const value = obj[key] ?? fallback;
    if (!allowed.includes(value as T)) throw corrupt(where, `has "${key}": ${JSON.stringify(value)}; expected one of ${allowed.join(', ')}`);
    return value as T;
  };
  const base64 = (key: string): string => {
    const value = obj[key];
    if (typeof value !== 'string' || value.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) throw corrupt(where, `needs "${key}" as base64 text`);
    return value;
  };

  const version = int('version');
  if (version !== 1) throw corrupt(where, `has version ${version}; macvm reads Tart's version 1`);
  const os = oneOf('os', ['darwin', 'linux'] as const, 'darwin');
  const macText = obj.macAddress;
  const macAddress = typeof macText === 'string' ? normalizeMac(macText) : undefined;
  if (!macAddress) throw corrupt(where, `has "macAddress": ${JSON.stringify(macText)}, not a MAC address`);
  const display = readDisplay(obj.display, where);
  const config: TartVmConfig = {
    version,
    os,
    arch: oneOf('arch', ['arm64', 'amd64'] as const, 'arm64'),
    cpuCountMin: int('cpuCountMin'),
    cpuCount: int('cpuCount'),
    memorySizeMin: int('memorySizeMin'),
    memorySize: int('memorySize'),
    macAddress,
    display,
    diskFormat: oneOf('diskFormat', ['raw', 'asif'] as const, 'raw'),
    raw: obj,
  };
  if (typeof obj.displayRefit === 'boolean') config.displayRefit = obj.displayRefit;
  if (obj.sync !== undefined) config.sync = oneOf('sync', ['none', 'fsync', 'full'] as const, 'full');
  if (os === 'darwin') {
    config.ecid = base64('ecid');
    config.hardwareModel = base64('hardwareModel');
  }
  return config;
}

function readDisplay(value: unknown, where: string): TartVmConfig['display'] {
  if (value === undefined) return { width: 1024, height: 768 }; // Tart's VMDisplayConfig defaults
  const display = value as Record<string, unknown>;
  const ok = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (typeof value !== 'object' || value === null || !ok(display.width) || !ok(display.height)) {
    throw corrupt(where, `has "display": ${JSON.stringify(value)}; expected {"width": N, "height": N}`);
  }
  const unit = display.unit;
  if (unit !== undefined && unit !== 'pt' && unit !== 'px') throw corrupt(where, `has display unit ${JSON.stringify(unit)}; expected "pt" or "px"`);
  return { width: display.width as number, height: display.height as number, ...(unit ? { unit } : {}) };
}

/** Tart's own key order and JSON shape, keeping unknown keys from the file it came from. */
export function serializeTartConfig(config: TartVmConfig): string {
  const { raw, ...known } = config;
  const ordered: Record<string, unknown> = {
    version: known.version,
    os: known.os,
    arch: known.arch,
    ...(known.ecid !== undefined ? { ecid: known.ecid } : {}),
    ...(known.hardwareModel !== undefined ? { hardwareModel: known.hardwareModel } : {}),
    cpuCountMin: known.cpuCountMin,
    cpuCount: known.cpuCount,
    memorySizeMin: known.memorySizeMin,
    memorySize: known.memorySize,
    macAddress: known.macAddress,
    display: known.display,
    ...(known.displayRefit !== undefined ? { displayRefit: known.displayRefit } : {}),
    diskFormat: known.diskFormat,
    ...(known.sync !== undefined ? { sync: known.sync } : {}),
  };
  return JSON.stringify({ ...raw, ...ordered }, null, 2) + '\n';
}

export async function readBundleConfig(bundleDir: string): Promise<TartVmConfig> {
  const path = join(bundleDir, BUNDLE_FILES.config);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new MacvmError('MACVM_IMAGE_NOT_FOUND', `No VM bundle at ${bundleDir} (${path} is missing).`, {
      hint: 'Create one with `macvm image create <name> --ipsw latest`, or point at a Tart VM directory (~/.tart/vms/<name>).',
      cause: error,
    });
  }
  return parseTartConfig(text, path);
}

export async function writeBundleConfig(bundleDir: string, config: TartVmConfig): Promise<void> {
  await writeFileAtomic(join(bundleDir, BUNDLE_FILES.config), serializeTartConfig(config));
}

function corrupt(where: string, problem: string): MacvmError {
  return new MacvmError('MACVM_IMAGE_CORRUPT', `${where} ${problem}.`, {
    hint: 'The bundle is not a valid Tart VM bundle; recreate it (`macvm image create`) or re-pull it with Tart.',
  });
}
