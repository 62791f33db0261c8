import { isAppleSilicon } from '../host-facts.js';
import type { DoctorCheck, DoctorContext } from '../doctor-check.js';

/**
 * vz needs macOS on Apple Silicon, the addon built (npm run build:native), and vmhost: a
 * copy of node signed with the virtualization entitlement (made by --fix).
 */
export async function vzDoctorChecks(context: DoctorContext): Promise<DoctorCheck[]> {
  if (!isAppleSilicon(context.host)) {
    return [{ area: 'vz', ok: false, detail: 'needs macOS 12+ on Apple Silicon (not this host)', notForThisHost: true }];
  }
  const checks: DoctorCheck[] = [];
  try {
    const { loadVzAddon } = await import('./addon.js');
    loadVzAddon();
    checks.push({ area: 'vz addon', ok: true, detail: 'Virtualization.framework addon loads' });
  } catch (error) {
    checks.push({ area: 'vz addon', ok: false, detail: (error as Error).message.split('\n')[0]!, fix: 'npm run build:native' });
  }
  const { ensureVmhostBinary } = await import('./vmhost-binary.js');
  const vmhost = await ensureVmhostBinary({ fix: context.fix });
  checks.push(
    vmhost.ok
      ? { area: 'vz vmhost', ok: true, detail: `${vmhost.path} carries com.apple.security.virtualization${vmhost.fixed ? ' (signed now)' : ''}` }
      : { area: 'vz vmhost', ok: false, detail: vmhost.problem ?? 'vmhost is not signed', fix: 'macvm doctor --fix', fixedByDoctor: true },
  );
  return checks;
}
