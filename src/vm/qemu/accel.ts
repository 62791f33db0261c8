import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { GuestArch } from '../types.js';

export type Accelerator = 'kvm' | 'hvf' | 'tcg';

export interface HostFacts {
  platform: NodeJS.Platform;
  /** Node's process.arch: 'x64' | 'arm64' | ... */
  arch: string;
  /** Whether /dev/kvm exists and is readable and writable by us. */
  kvmUsable: boolean;
}

export async function probeHost(): Promise<HostFacts> {
  let kvmUsable = false;
  if (process.platform === 'linux') {
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
      kvmUsable = true;
    } catch {
      kvmUsable = false;
    }
  }
  return { platform: process.platform, arch: process.arch, kvmUsable };
}

export function hostGuestArch(nodeArch: string): GuestArch | undefined {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  return undefined;
}

/**
 * Hardware acceleration only works when the guest has the host's architecture:
 * KVM on Linux where /dev/kvm is usable, HVF on macOS. Anything else is emulated (TCG),
 * which works everywhere but is several times slower.
 */
export function chooseAccelerator(host: HostFacts, guestArch: GuestArch): Accelerator {
  if (hostGuestArch(host.arch) !== guestArch) return 'tcg';
  if (host.platform === 'linux' && host.kvmUsable) return 'kvm';
  if (host.platform === 'darwin') return 'hvf';
  return 'tcg';
}
