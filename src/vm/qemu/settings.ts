// Kept free of run-time imports beyond errors: the config schema (loaded with users' config files) reads it.
import { MacvmError } from '../../errors.js';

export type Accelerator = 'kvm' | 'hvf' | 'tcg';
export type AcceleratorSetting = 'auto' | Accelerator;
export const ACCELERATOR_SETTINGS: readonly AcceleratorSetting[] = ['auto', 'kvm', 'hvf', 'tcg'];

/** The config's `qemu` section. */
export interface QemuSettings {
  /**
   * 'auto' (default): kvm (Linux) or hvf (macOS) once a probe has run a guest under it on
   * this host, else tcg. A forced accelerator that cannot run fails with
   * MACVM_PROVIDER_UNAVAILABLE. Env: MACVM_ACCEL.
   */
  accelerator?: AcceleratorSetting;
  /** The qemu-system binary to run instead of qemu-system-<arch> from PATH. Env: MACVM_QEMU_BINARY. */
  binary?: string;
}

/** Settings as the provider uses them: environment over config, checked. */
export interface ResolvedQemuSettings {
  accelerator: AcceleratorSetting;
  binary?: string;
}

export function resolveQemuSettings(settings: Record<string, unknown> | undefined, env: NodeJS.ProcessEnv = process.env): ResolvedQemuSettings {
  const configured = settings?.accelerator;
  if (configured !== undefined && !(ACCELERATOR_SETTINGS as readonly unknown[]).includes(configured)) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `qemu.accelerator must be one of ${ACCELERATOR_SETTINGS.join(', ')}, got ${JSON.stringify(configured)}.`);
  }
  const binary = env.MACVM_QEMU_BINARY?.trim() || (typeof settings?.binary === 'string' ? settings.binary : undefined);
  return { accelerator: requestedAccelerator(configured as AcceleratorSetting | undefined, env), ...(binary ? { binary } : {}) };
}

/** MACVM_ACCEL over the config's `qemu.accelerator`, over 'auto'. */
export function requestedAccelerator(configured: AcceleratorSetting | undefined, env: NodeJS.ProcessEnv = process.env): AcceleratorSetting {
  const fromEnv = env.MACVM_ACCEL?.trim().toLowerCase();
  if (fromEnv) {
    if (!(ACCELERATOR_SETTINGS as readonly string[]).includes(fromEnv)) {
      throw new MacvmError('MACVM_CONFIG_INVALID', `MACVM_ACCEL must be one of ${ACCELERATOR_SETTINGS.join(', ')}, got "${env.MACVM_ACCEL}".`, {
        hint: 'Unset it to let macvm choose (auto), or set MACVM_ACCEL=tcg to force software emulation.',
      });
    }
    return fromEnv as AcceleratorSetting;
  }
  return configured ?? 'auto';
}
