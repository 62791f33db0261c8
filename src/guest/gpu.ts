import { MacvmError, messageOf } from '../errors.js';
import type { GuestSession } from './types.js';

/** A display adapter as a macOS guest reports it. */
export interface GpuInfo {
  /** "Apple Paravirtual device", "Apple M1", "Intel Iris Graphics 6100" */
  name: string;
  /** "Apple", "Intel", "VMware" */
  vendor: string;
  /** "Metal 3", "Metal (feature set family 13)"; undefined without Metal. */
  metal: string | undefined;
  /** True when the guest renders in software (no Metal, or a known software renderer). */
  software: boolean;
  displays: Array<{ name: string; width: number; height: number; scale: number; main: boolean }>;
}

const SOFTWARE_RENDERERS = /llvmpipe|softpipe|swiftshader|software|basic render/i;

/** Parses `system_profiler -json SPDisplaysDataType`: every adapter, in the order listed. */
export function parseDisplaysJson(text: string): GpuInfo[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new MacvmError('MACVM_NOT_SUPPORTED', `system_profiler printed something that is not JSON: ${messageOf(error)}.`, {
      details: { output: text.slice(0, 500) },
    });
  }
  const adapters = (parsed as { SPDisplaysDataType?: unknown }).SPDisplaysDataType;
  if (!Array.isArray(adapters)) {
    throw new MacvmError('MACVM_NOT_SUPPORTED', 'system_profiler output has no SPDisplaysDataType list.', { details: { output: text.slice(0, 500) } });
  }
  return adapters.map((raw) => adapterInfo(raw as Record<string, unknown>));
}

function adapterInfo(raw: Record<string, unknown>): GpuInfo {
  const text = (key: string) => (typeof raw[key] === 'string' ? (raw[key] as string) : undefined);
  const name = text('sppci_model') ?? readableName(text('_name')) ?? 'unknown';
  const metal = metalSupport(text('spdisplays_mtlgpufamilysupport') ?? text('spdisplays_metal') ?? text('spdisplays_metalfamily'));
  const displays = Array.isArray(raw.spdisplays_ndrvs) ? (raw.spdisplays_ndrvs as Array<Record<string, unknown>>).map(displayInfo) : [];
  return { name, vendor: vendorName(text('spdisplays_vendor')), metal, software: metal === undefined || SOFTWARE_RENDERERS.test(name), displays };
}

/** "kHW_IntelIris6100Item" is a localisation key; only use it when there is nothing better. */
function readableName(name: string | undefined): string | undefined {
  return name?.replace(/^kHW_(.*)Item$/, '$1');
}

/** "sppci_vendor_Apple" → "Apple"; "VMware (0x15ad)" → "VMware". */
function vendorName(vendor: string | undefined): string {
  if (!vendor) return 'unknown';
  const key = vendor.replace(/^sppci_vendor_/, '').replace(/\s*\(0x[0-9a-f]+\)$/i, '');
  return key.length <= 5 && key === key.toLowerCase() ? key.charAt(0).toUpperCase() + key.slice(1) : key;
}

/** "spdisplays_metal3" → "Metal 3"; "spdisplays_metalfeaturesetfamily13" → "Metal (feature set family 13)". */
function metalSupport(value: string | undefined): string | undefined {
  if (!value || /not_?supported|spdisplays_no$/i.test(value)) return undefined;
  const family = /metal(\d+)$/.exec(value);
  if (family) return `Metal ${family[1]}`;
  const featureSet = /metalfeaturesetfamily(\d+)$/.exec(value);
  if (featureSet) return `Metal (feature set family ${featureSet[1]})`;
  return 'Metal';
}

function displayInfo(raw: Record<string, unknown>): GpuInfo['displays'][number] {
  const size = (value: unknown) => {
    const match = typeof value === 'string' ? /(\d+)\s*x\s*(\d+)/.exec(value) : null;
    return match ? { width: Number(match[1]), height: Number(match[2]) } : undefined;
  };
  const pixels = size(raw._spdisplays_pixels);
  const points = size(raw._spdisplays_resolution) ?? size(raw.spdisplays_resolution);
  const width = pixels?.width ?? points?.width ?? 0;
  const height = pixels?.height ?? points?.height ?? 0;
  const scale = pixels && points && points.width > 0 ? Math.round((pixels.width / points.width) * 100) / 100 : 1;
  return { name: typeof raw._name === 'string' ? raw._name : 'display', width, height, scale, main: raw.spdisplays_main === 'spdisplays_yes' };
}

/**
 * The guest's renderer: the first adapter with Metal, else the first one. A macOS guest on
 * Apple Silicon (vz, tart) reports the "Apple Paravirtual device" with Metal.
 */
export async function gpu(session: GuestSession): Promise<GpuInfo> {
  const result = await session.exec('system_profiler -json SPDisplaysDataType', { reject: false, timeoutMs: 60_000 });
  if (result.exitCode !== 0) {
    throw new MacvmError('MACVM_NOT_SUPPORTED', `system_profiler failed in the guest (exit ${result.exitCode}): ${result.stderr.trim() || result.stdout.trim()}`, {
      hint: 'vm.gpu() needs a macOS guest.',
    });
  }
  const adapters = parseDisplaysJson(result.stdout);
  const chosen = adapters.find((a) => !a.software) ?? adapters[0];
  if (!chosen) throw new MacvmError('MACVM_NOT_SUPPORTED', 'The guest reports no display adapter at all.');
  return chosen;
}

/** Fails early and plainly when the guest renders in software (`requireGpu: true`). */
export function requireGpu(info: GpuInfo, suite?: string): void {
  if (!info.software) return;
  throw new MacvmError(
    'MACVM_GPU_REQUIRED',
    `${suite ? `Suite "${suite}" requires` : 'This suite requires'} GPU rendering, but the guest renders in software (adapter "${info.name}", ${info.metal ?? 'no Metal'}).`,
    {
      hint: 'Run it on a macOS guest on Apple Silicon (vz or tart provider), where the Apple Paravirtual device gives Metal; or drop requireGpu for this suite.',
      details: { gpu: info },
    },
  );
}
