import { describe, expect, it } from 'vitest';
import { PROBE_MARKER, x86ProbeBootSector } from '../../src/vm/qemu/accel-payload.js';
import { buildQemuArgs, kernelCommandLine, type QemuLaunchSpec } from '../../src/vm/qemu/args.js';

const base: QemuLaunchSpec = {
  name: 'macvm-0001',
  arch: 'x86_64',
  accel: 'tcg',
  machine: 'q35',
  cpus: 2,
  memoryMiB: 512,
  disk: '/run/d/disk.qcow2',
  kernel: '/img/vmlinuz',
  initrd: '/img/initrd.img',
  append: 'root=/dev/vda rw quiet',
  sshHostPort: 40022,
  qmpSocket: '/run/d/qmp.sock',
  consoleLog: '/run/d/console.log',
  display: false,
};

function valueOf(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe('buildQemuArgs', () => {
  it('forwards SSH to 127.0.0.1 only and wires QMP, console and the overlay', () => {
    const args = buildQemuArgs(base);
    // restrict=on by default: the guest reaches neither the host's loopback (10.0.2.2) nor beyond.
    expect(valueOf(args, '-netdev')).toEqual(['user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22']);
    expect(valueOf(buildQemuArgs({ ...base, network: 'none' }), '-netdev')).toEqual(valueOf(args, '-netdev'));
    expect(valueOf(buildQemuArgs({ ...base, network: 'nat' }), '-netdev')).toEqual(['user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22']);
    expect(valueOf(args, '-qmp')).toEqual(['unix:/run/d/qmp.sock,server=on,wait=off']);
    expect(valueOf(args, '-chardev')).toEqual(['file,id=console0,path=/run/d/console.log']);
    expect(valueOf(args, '-drive')[0]).toContain('file=/run/d/disk.qcow2');
    expect(valueOf(args, '-device')).toContain('virtio-blk-pci,drive=disk0');
    expect(args).toContain('-nodefaults');
    expect(valueOf(args, '-display')).toEqual(['none']);
    expect(args).not.toContain('-vga');
    expect(valueOf(args, '-smp')).toEqual(['2']);
    expect(valueOf(args, '-m')).toEqual(['512M']);
  });

  it('adds a VGA device only when a display is wanted', () => {
    expect(valueOf(buildQemuArgs({ ...base, display: true }), '-vga')).toEqual(['std']);
  });

  it('uses virtio-mmio devices on microvm and refuses a display there', () => {
    const args = buildQemuArgs({ ...base, machine: 'microvm', tscKhz: 2_400_000 });
    expect(valueOf(args, '-device')).toContain('virtio-blk-device,drive=disk0');
    expect(valueOf(args, '-M')[0]).toMatch(/^microvm,/);
    expect(valueOf(args, '-append')[0]).toContain('tsc_early_khz=2400000');
    expect(() => buildQemuArgs({ ...base, machine: 'microvm', display: true })).toThrow(/microvm has no display/);
  });

  it('passes the host CPU through with hardware acceleration only', () => {
    expect(valueOf(buildQemuArgs({ ...base, accel: 'kvm' }), '-cpu')).toEqual(['host']);
    expect(valueOf(buildQemuArgs(base), '-cpu')).toEqual(['qemu64']);
  });
});

describe('kernelCommandLine', () => {
  it('appends the serial console of the architecture', () => {
    expect(kernelCommandLine({ append: 'root=/dev/vda', arch: 'x86_64', machine: 'q35' })).toBe('root=/dev/vda console=ttyS0');
    expect(kernelCommandLine({ append: 'root=/dev/vda', arch: 'aarch64', machine: 'virt' })).toBe('root=/dev/vda console=ttyAMA0');
  });
  it('keeps an explicit tsc_early_khz', () => {
    expect(kernelCommandLine({ append: 'tsc_early_khz=1000', arch: 'x86_64', machine: 'microvm', tscKhz: 5 })).toBe('tsc_early_khz=1000 console=ttyS0');
  });
});

describe('CPU model', () => {
  const spec = { name: 'x', arch: 'x86_64' as const, machine: 'q35', cpus: 1, memoryMiB: 256, disk: 'd', sshHostPort: 1, qmpSocket: 'q', consoleLog: 'c', display: false };
  const cpuOf = (args: string[]) => args[args.indexOf('-cpu') + 1];
  it('is the one the accelerator probe proved, else host under kvm and an emulated model under tcg', () => {
    expect(cpuOf(buildQemuArgs({ ...spec, accel: 'kvm', cpu: 'host,-arch-capabilities' }))).toBe('host,-arch-capabilities');
    expect(cpuOf(buildQemuArgs({ ...spec, accel: 'kvm' }))).toBe('host');
    expect(cpuOf(buildQemuArgs({ ...spec, accel: 'tcg' }))).toBe('qemu64');
  });
});

describe('accelerator probe guest', () => {
  it('is one bootable sector whose message is the marker', () => {
    const sector = x86ProbeBootSector();
    expect(sector.length).toBe(512);
    expect([sector[510], sector[511]]).toEqual([0x55, 0xaa]);
    // mov si, imm16 at offset 9 points at the message: 0x7c00 + its offset in the sector.
    const messageAt = sector.readUInt16LE(10) - 0x7c00;
    expect(sector.subarray(messageAt, messageAt + PROBE_MARKER.length).toString('latin1')).toBe(PROBE_MARKER);
  });
});
