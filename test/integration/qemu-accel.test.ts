/**
 * The accelerator is chosen by proof: kvm only after a probe guest has run under it here.
 * A stand-in qemu (test/fixtures/qemu/stand-in-qemu.sh) fails under kvm exactly as the
 * Firecracker hosts this project's CI runs on do, and runs the real qemu otherwise, so these
 * tests behave the same on hosts with a working /dev/kvm, a broken one, or none. The real
 * probe runs too, against whatever this host has.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MacvmError } from '../../src/errors.js';
import { chooseAccelerator, type AcceleratorQuery } from '../../src/vm/qemu/accel.js';
import { buildQemuArgs } from '../../src/vm/qemu/args.js';
import { startMacVM } from '../../src/machine/start.js';
import { macvmErrorOf as rejectionOf } from '../support/macvm-error.js';
import { runMacvm } from '../support/run-macvm.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const STAND_IN = join(import.meta.dirname, '..', 'fixtures', 'qemu', 'stand-in-qemu.sh');
const CHOOSE = join(import.meta.dirname, '..', 'fixtures', 'qemu', 'choose-accel.ts');

let dir: string;
let log: string;
let kvmDevice: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-accel-'));
  log = join(dir, 'stand-in.log');
  // Stands for a /dev/kvm that this user can open, whatever the host has.
  kvmDevice = join(dir, 'kvm');
  await writeFile(kvmDevice, '');
  process.env.STANDIN_LOG = log;
  delete process.env.STANDIN_MODE;
});

afterEach(async () => {
  delete process.env.STANDIN_LOG;
  delete process.env.STANDIN_MODE;
  await rm(dir, { recursive: true, force: true });
});

function query(overrides: Partial<AcceleratorQuery> = {}): AcceleratorQuery {
  return { guestArch: 'x86_64', requested: 'auto', binary: STAND_IN, home: join(dir, 'home'), kvmDevice, platform: 'linux', hostArch: 'x64', ...overrides };
}

async function calls(): Promise<string[]> {
  return (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
}

describe('accelerator probe (stand-in qemu replaying a nested host whose KVM cannot run guests)', () => {
  it('falls back to tcg with qemu\'s own words when kvm is present but cannot run a guest', async () => {
    const fallbacks: string[] = [];
    const choice = await chooseAccelerator(query({ onFallback: (reason) => fallbacks.push(reason) }));
    expect(choice).toMatchObject({ accel: 'tcg', cpu: 'qemu64', source: 'probe' });
    expect(choice.reason).toMatch(/^kvm: present, unusable \(cpu host: error: failed to set MSR 0x10a to 0x69/);
    expect(choice.reason).toMatch(/cpu host,-arch-capabilities: the guest printed nothing in \d+ ms under kvm/);
    expect(choice.reason).toMatch(/→ tcg$/);
    expect(fallbacks).toEqual([choice.reason]);
    // tcg first (it times the host and proves the probe itself works), then both CPU models.
    expect(await calls()).toEqual(['tcg qemu64', 'kvm host', 'kvm host,-arch-capabilities']);
    expect(choice.attempts?.map((a) => a.ok)).toEqual([true, false, false]);
  });

  it('probes once per host state: the verdict is cached, and a new qemu binary probes again', async () => {
    const first = await chooseAccelerator(query());
    const again = await chooseAccelerator(query());
    expect(again).toMatchObject({ accel: 'tcg', source: 'cache', reason: first.reason });
    expect(await calls()).toHaveLength(3);
    // An upgraded qemu is a new binary (size or mtime), so the old verdict no longer applies.
    const copy = join(dir, 'qemu-copy.sh');
    await writeFile(copy, await readFile(STAND_IN), { mode: 0o755 });
    await chooseAccelerator(query({ binary: copy }));
    expect(await calls()).toHaveLength(6);
    await utimes(copy, new Date(), new Date(Date.now() + 60_000));
    expect((await chooseAccelerator(query({ binary: copy }))).source).toBe('probe');
  });

  it('uses kvm with the first CPU model a guest runs under (a masked feature on nested hosts)', async () => {
    process.env.STANDIN_MODE = 'masked-works';
    const choice = await chooseAccelerator(query());
    expect(choice).toMatchObject({ accel: 'kvm', cpu: 'host,-arch-capabilities', source: 'probe' });
    const args = buildQemuArgs({ name: 'x', arch: 'x86_64', accel: choice.accel, cpu: choice.cpu, machine: 'q35', cpus: 1, memoryMiB: 256, disk: 'd.qcow2', sshHostPort: 2222, qmpSocket: 'q.sock', consoleLog: 'c.log', display: false });
    expect(args.join(' ')).toContain('-accel kvm -M q35 -cpu host,-arch-capabilities');
  });

  it('a forced kvm that cannot run is MACVM_PROVIDER_UNAVAILABLE naming qemu\'s error', async () => {
    const error = await rejectionOf(chooseAccelerator(query({ requested: 'kvm' })));
    expect(error).toBeInstanceOf(MacvmError);
    expect(error).toMatchObject({ code: 'MACVM_PROVIDER_UNAVAILABLE' });
    expect(error.message).toContain('failed to set MSR 0x10a');
    // Forcing tcg needs no probe at all.
    await rm(log, { force: true });
    expect(await chooseAccelerator(query({ requested: 'tcg' }))).toMatchObject({ accel: 'tcg', source: 'host' });
    expect(await calls()).toEqual([]);
  });

  it('without a kvm device nothing is probed; forcing kvm then says the device is missing', async () => {
    const absent = join(dir, 'no-such-kvm');
    expect(await chooseAccelerator(query({ kvmDevice: absent }))).toMatchObject({ accel: 'tcg', reason: `kvm: no ${absent} → tcg` });
    expect(await calls()).toEqual([]);
    const error = await rejectionOf(chooseAccelerator(query({ kvmDevice: absent, requested: 'kvm' })));
    expect(error).toMatchObject({ code: 'MACVM_PROVIDER_UNAVAILABLE', message: expect.stringContaining(`no ${absent}`) });
    expect(await rejectionOf(chooseAccelerator(query({ requested: 'hvf' })))).toMatchObject({ code: 'MACVM_PROVIDER_UNAVAILABLE' });
  });

  it('two processes asking at once probe once between them', async () => {
    const home = join(dir, 'home');
    const run = () => promisify(execFile)(process.execPath, ['--import', 'tsx', CHOOSE, home, STAND_IN, kvmDevice], { env: process.env });
    const [a, b] = await Promise.all([run(), run()]);
    const verdicts = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    expect(verdicts.map((v) => v.accel)).toEqual(['tcg', 'tcg']);
    expect(verdicts.map((v) => v.source).sort()).toEqual(['cache', 'probe']);
    expect(await calls()).toEqual(['tcg qemu64', 'kvm host', 'kvm host,-arch-capabilities']);
  });

  it('MACVM_ACCEL is checked: a typo is a config error, not a silent default', async () => {
    const { resolveQemuSettings } = await import('../../src/vm/qemu/settings.js');
    expect(resolveQemuSettings({ accelerator: 'kvm' }, { MACVM_ACCEL: 'TCG' }).accelerator).toBe('tcg');
    expect(() => resolveQemuSettings(undefined, { MACVM_ACCEL: 'kvmm' })).toThrow(expect.objectContaining({ code: 'MACVM_CONFIG_INVALID' }));
    expect(resolveQemuSettings({ binary: '/x/qemu' }, { MACVM_QEMU_BINARY: '/y/qemu' }).binary).toBe('/y/qemu');
  });
});

describe('booting through the stand-in (real qemu under tcg, real guest)', () => {
  let testHome: TestHome;
  beforeAll(async () => {
    testHome = await createTestHome();
  });
  afterAll(async () => {
    await testHome.cleanup();
  });

  it('auto boots the guest under tcg on a host whose kvm cannot run one, and says why once', async () => {
    // A private verdict cache for this test, so the probe really runs here.
    await rm(join(testHome.home, 'accel'), { force: true });
    process.env.MACVM_QEMU_BINARY = STAND_IN;
    process.env.MACVM_KVM_DEVICE = kvmDevice;
    const said: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      said.push(String(chunk));
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    try {
      const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 90_000 });
      try {
        expect((await vm.sh`echo up`).stdout).toBe('up');
      } finally {
        await vm.dispose();
      }
    } finally {
      process.stderr.write = write;
      delete process.env.MACVM_QEMU_BINARY;
      delete process.env.MACVM_KVM_DEVICE;
    }
    const lines = await calls();
    expect(lines.slice(0, 3)).toEqual(['tcg qemu64', 'kvm host', 'kvm host,-arch-capabilities']);
    expect(lines[3]).toBe('tcg qemu64'); // the boot itself
    expect(said.filter((s) => s.includes('kvm: present, unusable'))).toHaveLength(1);
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  });

  it('macvm doctor reports the accelerator it really uses', async () => {
    const { stdout, code } = await runMacvm(['doctor', '--json'], {
      env: { MACVM_HOME: join(dir, 'doctor-home'), MACVM_QEMU_BINARY: STAND_IN, MACVM_KVM_DEVICE: kvmDevice },
    }).done;
    const report = JSON.parse(stdout) as { checks: Array<{ area: string; ok: boolean; detail: string }> };
    const accel = report.checks.find((c) => c.area === 'accelerator');
    expect(accel).toMatchObject({ ok: true, detail: expect.stringMatching(/^tcg .*kvm: present, unusable \(cpu host: error: failed to set MSR 0x10a/) });
    expect(code).not.toBeNull();
  });
});

describe('the real probe on this host', () => {
  let testHome: TestHome;
  beforeAll(async () => {
    testHome = await createTestHome();
    await rm(join(testHome.home, 'accel'), { force: true });
  });
  afterAll(async () => {
    await testHome.cleanup();
  });

  it('gives a verdict it can back: the guest boots under the accelerator it names, or it says why not', async () => {
    const choice = await chooseAccelerator({ guestArch: 'x86_64', requested: 'auto', binary: 'qemu-system-x86_64', home: testHome.home });
    if (!existsSync('/dev/kvm')) {
      expect(choice).toMatchObject({ accel: 'tcg', reason: 'kvm: no /dev/kvm → tcg', source: 'host' });
    } else if (choice.accel === 'kvm') {
      expect(choice.attempts?.at(-1)).toMatchObject({ accel: 'kvm', ok: true, cpu: choice.cpu });
    } else {
      expect(choice.reason).toMatch(/^kvm: present, unusable \(.+\) → tcg$/);
      expect(choice.attempts?.[0]).toMatchObject({ accel: 'tcg', ok: true });
      expect(choice.attempts?.slice(1).every((a) => !a.ok && a.reason)).toBe(true);
    }
    const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '256MiB', deadline: 90_000 });
    try {
      const pid = (await testHome.leftovers()).qemuPids[0]!;
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      expect(argv.slice(argv.indexOf('-accel'), argv.indexOf('-accel') + 2)).toEqual(['-accel', choice.accel]);
      expect(argv[argv.indexOf('-cpu') + 1]).toBe(choice.cpu);
      expect((await vm.sh`echo up`).stdout).toBe('up');
    } finally {
      await vm.dispose();
    }
  });
});
