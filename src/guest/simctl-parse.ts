import { MacvmError, messageOf } from '../errors.js';

/** The parts of `xcrun simctl list -j devices devicetypes runtimes` macvm uses. */
export interface SimctlList {
  deviceTypes: SimDeviceType[];
  runtimes: SimRuntime[];
  devices: SimDevice[];
}

export interface SimDeviceType {
  identifier: string;
  name: string;
  /** "iPhone", "iPad", "Apple TV", "Apple Watch", "Apple Vision" */
  productFamily?: string;
}

export interface SimRuntime {
  identifier: string;
  /** "iOS 26.1" */
  name: string;
  /** "26.1" */
  version: string;
  buildversion?: string;
  /** "iOS", "tvOS", ... (derived from the identifier on old Xcodes that lack the field) */
  platform: string;
  isAvailable: boolean;
  /** Undefined on Xcodes that do not list them. */
  supportedDeviceTypes?: SimDeviceType[];
}

export interface SimDevice {
  udid: string;
  name: string;
  /** "Shutdown", "Booted", "Booting", "Shutting Down" */
  state: string;
  isAvailable: boolean;
  availabilityError?: string;
  deviceTypeIdentifier?: string;
  runtimeIdentifier: string;
}

function fail(message: string, output?: string): MacvmError {
  return new MacvmError('MACVM_SIMULATOR_ERROR', message, { details: output === undefined ? {} : { output: output.slice(0, 500) } });
}

export function parseSimctlList(text: string): SimctlList {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw fail(`xcrun simctl list -j printed something that is not JSON: ${messageOf(error)}.`, text);
  }
  const deviceTypes = Array.isArray(json.devicetypes) ? (json.devicetypes as Array<Record<string, unknown>>).map(deviceType) : [];
  const runtimes = Array.isArray(json.runtimes) ? (json.runtimes as Array<Record<string, unknown>>).map(runtime) : [];
  const devices: SimDevice[] = [];
  if (json.devices && typeof json.devices === 'object') {
    for (const [runtimeIdentifier, list] of Object.entries(json.devices as Record<string, unknown>)) {
      if (!Array.isArray(list)) continue;
      for (const raw of list as Array<Record<string, unknown>>) {
        if (typeof raw.udid !== 'string') continue;
        devices.push({
          udid: raw.udid,
          name: String(raw.name ?? ''),
          state: String(raw.state ?? 'Unknown'),
          // Old Xcodes wrote availability as a string: "(available)".
          isAvailable: raw.isAvailable === true || raw.availability === '(available)',
          ...(typeof raw.availabilityError === 'string' ? { availabilityError: raw.availabilityError } : {}),
          ...(typeof raw.deviceTypeIdentifier === 'string' ? { deviceTypeIdentifier: raw.deviceTypeIdentifier } : {}),
          runtimeIdentifier,
        });
      }
    }
  }
  return { deviceTypes, runtimes, devices };
}

function deviceType(raw: Record<string, unknown>): SimDeviceType {
  return {
    identifier: String(raw.identifier ?? ''),
    name: String(raw.name ?? ''),
    ...(typeof raw.productFamily === 'string' ? { productFamily: raw.productFamily } : {}),
  };
}

function runtime(raw: Record<string, unknown>): SimRuntime {
  const identifier = String(raw.identifier ?? '');
  return {
    identifier,
    name: String(raw.name ?? ''),
    version: String(raw.version ?? ''),
    ...(typeof raw.buildversion === 'string' ? { buildversion: raw.buildversion } : {}),
    platform: typeof raw.platform === 'string' ? raw.platform : (/SimRuntime\.([A-Za-z]+)-/.exec(identifier)?.[1] ?? ''),
    isAvailable: raw.isAvailable === true,
    ...(Array.isArray(raw.supportedDeviceTypes) ? { supportedDeviceTypes: (raw.supportedDeviceTypes as Array<Record<string, unknown>>).map(deviceType) } : {}),
  };
}

/** Finds a device type by name ("iPhone 15") or identifier, also among the runtimes' supported types. */
export function resolveDeviceType(list: SimctlList, query: string): SimDeviceType {
  const all = [...list.deviceTypes, ...list.runtimes.flatMap((r) => r.supportedDeviceTypes ?? [])];
  const found = all.find((t) => t.identifier === query) ?? all.find((t) => t.name === query) ?? all.find((t) => t.name.toLowerCase() === query.toLowerCase());
  if (!found) {
    const names = [...new Set(all.map((t) => t.name))].sort();
    throw fail(`No simulator device type "${query}" is installed in the guest. Known: ${names.join(', ') || 'none'}.`);
  }
  return found;
}

const FAMILY_PLATFORM: Record<string, string> = { iPhone: 'iOS', iPad: 'iOS', 'Apple TV': 'tvOS', 'Apple Watch': 'watchOS', 'Apple Vision': 'visionOS' };

/**
 * Finds a runtime by identifier, name ("iOS 26.1") or version ("26.1", on the device type's
 * platform). Without a query: the newest available runtime that supports the device type.
 */
export function resolveRuntime(list: SimctlList, type: SimDeviceType, query?: string): SimRuntime {
  const platform = type.productFamily ? FAMILY_PLATFORM[type.productFamily] : undefined;
  // Support shows in the runtime's list (Xcode 13+), or in a device of that type already made on it.
  const hasDevice = (r: SimRuntime) => list.devices.some((d) => d.isAvailable && d.runtimeIdentifier === r.identifier && d.deviceTypeIdentifier === type.identifier);
  const supports = (r: SimRuntime) =>
    (r.supportedDeviceTypes ? r.supportedDeviceTypes.some((t) => t.identifier === type.identifier) : platform === undefined || r.platform === platform) || hasDevice(r);
  let candidates: SimRuntime[];
  if (query) {
    candidates = list.runtimes.filter((r) => r.identifier === query || r.name === query || (r.version === query && (platform === undefined || r.platform === platform)));
  } else {
    candidates = list.runtimes.filter((r) => r.isAvailable && supports(r)).sort((a, b) => compareVersions(b.version, a.version));
  }
  const found = candidates[0];
  if (!found) {
    const names = list.runtimes.map((r) => `${r.name}${r.isAvailable ? '' : ' (unavailable)'}`);
    throw fail(`No simulator runtime ${query ? `"${query}"` : `for ${type.name}`} is installed in the guest. Installed: ${names.join(', ') || 'none'}.`);
  }
  if (!found.isAvailable) throw fail(`The simulator runtime ${found.name} is installed but not available.`);
  return found;
}

/** An existing, available device of that type on that runtime (a booted one first). */
export function findDevice(list: SimctlList, type: SimDeviceType, runtime: SimRuntime): SimDevice | undefined {
  const matches = list.devices.filter((d) => d.isAvailable && d.runtimeIdentifier === runtime.identifier && d.deviceTypeIdentifier === type.identifier);
  return matches.find((d) => d.state === 'Booted') ?? matches[0];
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}
