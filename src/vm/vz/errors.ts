import { ERROR_CODES, MacvmError, type MacvmErrorCode } from '../../errors.js';
import type { WireError } from './vmhost-protocol.js';

const HINTS: Partial<Record<MacvmErrorCode, string>> = {
  MACVM_SLOT_LIMIT: 'macOS runs at most two macOS VMs per host. Stop another (`macvm vm ls`, `tart list`) or lower `slots` in macvm.config.ts.',
  MACVM_ENTITLEMENT_MISSING: 'Run `macvm doctor --fix`: it makes an ad-hoc-signed copy of node with com.apple.security.virtualization for vmhost.',
  MACVM_NATIVE_ADDON_MISSING: 'Build the addon with `node scripts/build-native.mjs` on an Apple Silicon Mac.',
  MACVM_IPSW_INVALID: 'Use `--ipsw latest`, or an IPSW for Apple Silicon Macs that this host\'s macOS supports.',
  MACVM_INSTALL_FAILED: 'Check free disk space and that the host macOS is at least as new as the IPSW, then retry `macvm image create`.',
  MACVM_IMAGE_CORRUPT: 'Recreate the image (`macvm image create`) or re-pull it with Tart.',
};

/** A vmhost/addon error (a MacvmError code chosen natively from the NSError) as a MacvmError. */
export function macvmErrorFromWire(error: WireError, fallback: MacvmErrorCode, context?: string): MacvmError {
  const code = (error.code in ERROR_CODES ? error.code : fallback) as MacvmErrorCode;
  const details: Record<string, unknown> = {};
  if (error.domain) details.domain = error.domain;
  if (error.nativeCode !== undefined) details.nativeCode = error.nativeCode;
  return new MacvmError(code, context ? `${context}: ${error.message}` : error.message, { hint: HINTS[code], details });
}
