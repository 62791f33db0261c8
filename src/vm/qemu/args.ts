import { MacvmError } from '../../errors.js';
import type { GuestArch, NetworkMode } from '../types.js';
import { emulatedCpuModel, type Accelerator } from './accel.js';
import { authorizedKeyParameter } from './authorized-key.js';

export interface QemuLaunchSpec {
  name: string;
  arch: GuestArch;
  accel: Accelerator;
  /** The -cpu model; default: 'host' under kvm/hvf, an emulated model under tcg. */
  cpu?: string;
  /** 'q35' | 'pc' | 'microvm' for x86_64; 'virt' for aarch64. */
  machine: string;
  cpus: number;
  memoryMiB: number;
  disk: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  sshHostPort: number;
  qmpSocket: string;
  consoleLog: string;
  display: boolean;
  /**
   * 'none' (the default): slirp's `restrict=on` — the guest reaches neither the host (its
   * 10.0.2.2 alias of the host's 127.0.0.1) nor anything beyond it; the SSH hostfwd still
   * works, and so do SSH forwards (exposeHostPort). 'nat': plain user-mode NAT, which
   * includes the host's loopback via 10.0.2.2 (QEMU 7.2 has no switch to drop that alias).
   */
  network?: NetworkMode;
  /** For microvm: the host TSC in kHz, so the guest skips calibration (which can hang on a busy host). */
  tscKhz?: number;
  /**
   * The login key's public line, for guests that take root's authorized key from the kernel
   * command line (image.json `ssh.authorizedKeyFrom`). Public, so the command line — which
   * every guest user can read in /proc/cmdline — is a fine place for it.
   */
  authorizedKey?: string;
}

/** qemu-system-<arch> from PATH, unless the settings name another binary (a path or a name). */
export function qemuBinary(arch: GuestArch, override?: string): string {
  if (override) return override;
  return arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64';
}

/** The serial console device name the guest kernel sees. */
export function consoleDevice(arch: GuestArch): string {
  return arch === 'x86_64' ? 'ttyS0' : 'ttyAMA0';
}

/**
 * Builds the qemu-system argv. Headless, no default devices, the serial console into a
 * file, QMP on a unix socket in the runtime dir, and user-mode networking whose only
 * way in is guest port 22 forwarded to 127.0.0.1 (never 0.0.0.0), and whose way out is
 * closed unless `network: 'nat'` asks for it.
 */
export function buildQemuArgs(spec: QemuLaunchSpec): string[] {
  const microvm = spec.machine === 'microvm';
  if (microvm && spec.display) {
    throw new Error('microvm has no display device; use a q35 or pc machine when a display is wanted');
  }
  // microvm has no PCI bus: its devices are virtio-mmio ("-device" suffix), the rest use PCI.
  const bus = microvm ? 'device' : 'pci';
  const args = [
    '-name', `${spec.name},process=${spec.name}`,
    '-nodefaults', '-no-user-config',
    // A guest reboot (or a kernel panic with panic=-1) ends qemu instead of looping.
    '-no-reboot',
    '-accel', spec.accel,
    '-M', machineOption(spec),
    '-cpu', cpuModel(spec),
    '-smp', String(spec.cpus),
    '-m', `${spec.memoryMiB}M`,
    '-drive', `file=${spec.disk},if=none,id=disk0,format=qcow2,discard=unmap`,
    '-device', `virtio-blk-${bus},drive=disk0`,
    '-netdev', `user,id=net0,${(spec.network ?? 'none') === 'none' ? 'restrict=on,' : ''}hostfwd=tcp:127.0.0.1:${spec.sshHostPort}-:22`,
    '-device', `virtio-net-${bus},netdev=net0`,
    '-device', `virtio-rng-${bus}`,
    '-chardev', `file,id=console0,path=${spec.consoleLog}`,
    '-serial', 'chardev:console0',
    '-qmp', `unix:${spec.qmpSocket},server=on,wait=off`,
    '-display', 'none',
  ];
  if (spec.display) args.push('-vga', 'std');
  if (spec.kernel) {
    args.push('-kernel', spec.kernel);
    if (spec.initrd) args.push('-initrd', spec.initrd);
    args.push('-append', kernelCommandLine(spec));
  }
  return args;
}

function machineOption(spec: QemuLaunchSpec): string {
  if (spec.machine === 'microvm') {
    // isa-serial for the console; no legacy PIC/PIT/RTC, which microvm does not need.
    return 'microvm,isa-serial=on,pic=off,pit=off,rtc=off';
  }
  return spec.machine;
}

function cpuModel(spec: QemuLaunchSpec): string {
  if (spec.cpu) return spec.cpu;
  return spec.accel === 'kvm' || spec.accel === 'hvf' ? 'host' : emulatedCpuModel(spec.arch);
}

/** x86's COMMAND_LINE_SIZE (arm64's is the same): a longer line is cut short by the kernel. */
const KERNEL_COMMAND_LINE_MAX = 2047;

export function kernelCommandLine(spec: Pick<QemuLaunchSpec, 'append' | 'arch' | 'machine' | 'tscKhz' | 'authorizedKey'>): string {
  const parts = [spec.append ?? '', `console=${consoleDevice(spec.arch)}`];
  if (spec.machine === 'microvm' && spec.tscKhz && !/tsc_early_khz=/.test(spec.append ?? '')) {
    parts.push(`tsc_early_khz=${spec.tscKhz}`);
  }
  // Last: the guest takes the last occurrence, so nothing in the image's own append can override it.
  if (spec.authorizedKey) parts.push(authorizedKeyParameter(spec.authorizedKey));
  const line = parts.filter(Boolean).join(' ');
  if (line.length > KERNEL_COMMAND_LINE_MAX) {
    throw new MacvmError('MACVM_CONFIG_INVALID', `The guest's kernel command line would be ${line.length} bytes, more than the kernel's ${KERNEL_COMMAND_LINE_MAX}.`, {
      hint: 'The login key\'s public half travels on it: use an ed25519 key (a short line) in images.<name>.ssh.privateKeyPath, or shorten the image\'s append.',
    });
  }
  return line;
}
