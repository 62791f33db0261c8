import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, stat } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { MacvmError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { withFileLock } from '../../util/file-lock.js';
import type { GuestArch } from '../types.js';
import { runProbe, type ProbeAttempt } from './accel-probe.js';
import type { Accelerator, AcceleratorSetting } from './settings.js';

export type { Accelerator, AcceleratorSetting } from './settings.js';

/** What qemu is started with, and why. */
export interface AcceleratorChoice {
  accel: Accelerator;
  /** The -cpu model: the one the probe proved, for kvm/hvf. */
  cpu: string;
  /** One line a person reads: "kvm: present, unusable (failed to set MSR 0x10a …) → tcg". */
  reason: string;
  /** 'probe' ran just now, 'cache' from an earlier probe on this host state, 'host' needed no probe. */
  source: 'probe' | 'cache' | 'host';
  attempts?: ProbeAttempt[];
}

export interface AcceleratorQuery {
  guestArch: GuestArch;
  requested: AcceleratorSetting;
  /** The qemu-system binary (name or path) that boots the VMs; the probe uses the same one. */
  binary: string;
  /** MACVM_HOME: verdicts are cached under accel/. */
  home: string;
  /** Default /dev/kvm; MACVM_KVM_DEVICE points elsewhere (tests, unusual hosts). */
  kvmDevice?: string;
  platform?: NodeJS.Platform;
  hostArch?: string;
  /** Called with the reason when a probe just ran and ruled the accelerator out. */
  onFallback?: (reason: string) => void;
}

/**
 * CPU models tried in order under kvm/hvf. Nested hosts often refuse one MSR or feature of
 * `host` (this project's CI machines abort on IA32_ARCH_CAPABILITIES, MSR 0x10a), so the
 * masked variant is the second try; the first one the guest runs under is used for boots.
 */
const HARDWARE_CPU_MODELS: Record<GuestArch, string[]> = {
  x86_64: ['host', 'host,-arch-capabilities'],
  aarch64: ['host'],
};

export function emulatedCpuModel(arch: GuestArch): string {
  return arch === 'x86_64' ? 'qemu64' : 'cortex-a72';
}

export function hostGuestArch(nodeArch: string): GuestArch | undefined {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  return undefined;
}

/**
 * The accelerator qemu boots with. Hardware acceleration is used only once a bounded probe
 * has run a guest under it on this host (a /dev/kvm that root can open may still be unable
 * to run anything); the verdict is cached per host state, and one process probes at a time.
 * A forced accelerator that cannot run is MACVM_PROVIDER_UNAVAILABLE with qemu's words.
 */
export async function chooseAccelerator(query: AcceleratorQuery): Promise<AcceleratorChoice> {
  const platform = query.platform ?? process.platform;
  const hostArch = query.hostArch ?? process.arch;
  const tcg = (reason: string, source: AcceleratorChoice['source'] = 'host'): AcceleratorChoice => ({ accel: 'tcg', cpu: emulatedCpuModel(query.guestArch), reason, source });
  if (query.requested === 'tcg') return tcg('tcg: chosen by MACVM_ACCEL or qemu.accelerator');

  const hardware: Accelerator | undefined = platform === 'linux' ? 'kvm' : platform === 'darwin' ? 'hvf' : undefined;
  if (query.requested !== 'auto' && query.requested !== hardware) {
    throw unavailable(query.requested, `${query.requested} does not exist on ${platform}`);
  }
  if (!hardware) return tcg(`no hardware accelerator on ${platform} → tcg`);
  if (hostGuestArch(hostArch) !== query.guestArch) {
    if (query.requested !== 'auto') throw unavailable(hardware, `a ${query.guestArch} guest cannot use ${hardware} on a ${hostArch} host`);
    return tcg(`${query.guestArch} guest on a ${hostArch} host: emulated (tcg)`);
  }
  if (hardware === 'kvm') {
    const device = query.kvmDevice ?? process.env.MACVM_KVM_DEVICE ?? '/dev/kvm';
    const missing = await deviceProblem(device);
    if (missing) {
      if (query.requested === 'kvm') throw unavailable('kvm', missing);
      return tcg(`kvm: ${missing} → tcg`);
    }
  }

  const verdict = await cachedProbe(query, hardware, platform, hostArch);
  if (verdict.accel === hardware) return verdict;
  if (query.requested !== 'auto') throw unavailable(hardware, verdict.reason);
  if (verdict.source === 'probe') query.onFallback?.(verdict.reason);
  return verdict;
}

function unavailable(accel: Accelerator, why: string): MacvmError {
  return new MacvmError('MACVM_PROVIDER_UNAVAILABLE', `qemu cannot use the ${accel} accelerator here: ${why}.`, {
    hint: 'Leave the accelerator on auto (unset MACVM_ACCEL / qemu.accelerator) to fall back to tcg, or run `macvm doctor` for what this host can do.',
    details: { accelerator: accel },
  });
}

async function deviceProblem(device: string): Promise<string | undefined> {
  try {
    await access(device, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `no ${device}` : `${device} is not usable by this user (${code}): add the user to group kvm`;
  }
}

/** The probe's verdict for this host state: from the cache, or probed now under a lock. */
async function cachedProbe(query: AcceleratorQuery, hardware: Accelerator, platform: string, hostArch: string): Promise<AcceleratorChoice> {
  const dir = join(query.home, 'accel');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = await hostStateKey(query, hardware, platform, hostArch);
  const file = join(dir, `${key}.json`);
  const cached = await readVerdict(file);
  if (cached) return cached;
  const onTimeout = (pid: number) => new MacvmError('MACVM_PROVIDER_UNAVAILABLE', `Another process (pid ${pid}) has been probing the ${hardware} accelerator for too long.`);
  return withFileLock(`${file}.lock`, { timeoutMs: 120_000, onTimeout, pollMs: 50 }, async () => {
    // Whoever held the lock before us may have written the verdict meanwhile.
    const settled = await readVerdict(file);
    if (settled) return settled;
    const verdict = await probeHardware(query.binary, hardware, query.guestArch);
    // A probe that could not even run emulated proves nothing about the host: not cached.
    if (verdict.cacheable) await writeFileAtomic(file, `${JSON.stringify({ probedAt: new Date().toISOString(), choice: verdict.choice }, null, 2)}\n`);
    return verdict.choice;
  });
}

async function readVerdict(file: string): Promise<AcceleratorChoice | undefined> {
  try {
    const { choice } = JSON.parse(await readFile(file, 'utf8')) as { choice: AcceleratorChoice };
    if (!choice || !['kvm', 'hvf', 'tcg'].includes(choice.accel) || typeof choice.cpu !== 'string') return undefined;
    return { ...choice, source: 'cache' };
  } catch {
    return undefined;
  }
}

/**
 * What identifies "this host as it is now": kernel release and boot, the qemu binary
 * (path, size, mtime: an upgrade is a new binary), and the device node. Any change probes
 * again; a reboot of the same kernel too, which costs one probe.
 */
async function hostStateKey(query: AcceleratorQuery, hardware: Accelerator, platform: string, hostArch: string): Promise<string> {
  const binary = await resolveBinary(query.binary);
  const binaryStat = binary ? await stat(binary).catch(() => undefined) : undefined;
  const device = hardware === 'kvm' ? (query.kvmDevice ?? process.env.MACVM_KVM_DEVICE ?? '/dev/kvm') : undefined;
  const deviceStat = device ? await stat(device).catch(() => undefined) : undefined;
  const state = {
    platform,
    hostArch,
    guestArch: query.guestArch,
    kernel: release(),
    boot: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim(),
    binary: binary ?? query.binary,
    binaryFile: binaryStat && [binaryStat.size, binaryStat.mtimeMs, binaryStat.ino],
    device: deviceStat && [device, deviceStat.rdev, deviceStat.ino, deviceStat.ctimeMs],
  };
  return createHash('sha256').update(JSON.stringify(state)).digest('hex').slice(0, 24);
}

async function resolveBinary(binary: string): Promise<string | undefined> {
  if (binary.includes('/')) return binary;
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    const candidate = join(dir, binary);
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

/**
 * First the probe guest under tcg, which must always work and times the host; then under
 * the hardware accelerator with each CPU model. A working KVM runs those few instructions
 * (and the BIOS before them) in a fraction of a second; one that needs more than the
 * emulated run plus a generous margin is broken, not slow — this project's CI hosts take
 * seconds for the boot sector and never finish booting Linux.
 */
async function probeHardware(binary: string, hardware: Accelerator, arch: GuestArch): Promise<{ choice: AcceleratorChoice; cacheable: boolean }> {
  const emulated = await runProbe({ binary, arch, accel: 'tcg', cpu: emulatedCpuModel(arch), timeoutMs: 20_000 });
  const attempts: ProbeAttempt[] = [emulated];
  if (!emulated.ok) {
    const reason = `the accelerator probe did not run even under tcg (${emulated.reason}), so ${hardware} is unproven → tcg`;
    return { choice: { accel: 'tcg', cpu: emulatedCpuModel(arch), reason, source: 'probe', attempts }, cacheable: false };
  }
  const budgetMs = 1_000 + 2 * emulated.ms;
  for (const cpu of HARDWARE_CPU_MODELS[arch]) {
    const attempt = await runProbe({ binary, arch, accel: hardware, cpu, timeoutMs: budgetMs });
    attempts.push(attempt);
    if (attempt.ok) {
      const reason = `${hardware}: a probe guest ran in ${attempt.ms} ms (cpu ${cpu})`;
      return { choice: { accel: hardware, cpu, reason, source: 'probe', attempts }, cacheable: true };
    }
  }
  const failures = attempts.slice(1).map((a) => `cpu ${a.cpu}: ${a.reason}`);
  const reason = `${hardware}: present, unusable (${failures.join('; ')}) → tcg`;
  return { choice: { accel: 'tcg', cpu: emulatedCpuModel(arch), reason, source: 'probe', attempts }, cacheable: true };
}
