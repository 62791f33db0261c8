import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { CLEAN_STATUS_BAR, Simulator } from '../../src/guest/simulator.js';
import { parseSimctlList } from '../../src/guest/simctl-parse.js';
import { encodePng } from '../../src/snapshot/png.js';
import { FakeGuestSession, type Reply } from '../fixtures/macos/fake-guest-session.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'macos');
const LIST_JSON = readFileSync(join(fixtures, 'simctl-list-devices-devicetypes-runtimes.json'), 'utf8');
const STATUS_BAR_HELP = readFileSync(join(fixtures, 'simctl-help-status_bar.txt'), 'utf8');
const IPHONE_11 = 'D40CE982-3E65-4756-8162-90EFE50AF7FA';
const CREATED = '5A1C3B77-0D2E-4F55-9E8A-2B7C0E4D9F10';

/** Replays real simctl output; anything not scripted here fails loudly. */
function simctlGuest(extra: (args: string[]) => Reply | undefined = () => undefined) {
  return new FakeGuestSession((argv) => {
    if (argv[0] === 'rm') return {};
    expect(argv.slice(0, 2)).toEqual(['xcrun', 'simctl']);
    const args = argv.slice(2);
    const scripted = extra(args);
    if (scripted) return scripted;
    switch (args[0]) {
      case 'list':
        return { stdout: LIST_JSON };
      case 'create':
        return { stdout: `${CREATED}\n` };
      case 'bootstatus':
        return { stdout: 'Monitoring boot status for iPhone.\nDevice booted in 12.3 seconds\n' };
      case 'launch':
        return { stdout: `${args[2]}: 4242\n` };
      default:
        return {};
    }
  });
}
const simctlCalls = (guest: FakeGuestSession) => guest.commands.filter((c) => c[0] === 'xcrun').map((c) => c.slice(2));

describe('simctl contract: list -j parsing (real Xcode 26.1 output)', () => {
  it('reads device types, runtimes and devices keyed by runtime', () => {
    const list = parseSimctlList(LIST_JSON);
    expect(list.deviceTypes.map((t) => t.name)).toEqual(['iPhone 11', 'iPad Pro 13-inch (M5)', 'Apple TV 4K (3rd generation)']);
    expect(list.runtimes.map((r) => [r.name, r.platform, r.version, r.isAvailable])).toEqual([
      ['iOS 26.1', 'iOS', '26.1', true],
      ['tvOS 26.1', 'tvOS', '26.1', true],
    ]);
    expect(list.devices).toHaveLength(5);
    const unavailable = list.devices.find((d) => d.udid === 'D4D95709-144A-4CAA-8469-89566EC1C935')!;
    expect(unavailable).toMatchObject({ isAvailable: false, runtimeIdentifier: 'com.apple.CoreSimulator.SimRuntime.iOS-26-0', availabilityError: 'runtime profile not found using "System" match policy' });
  });
});

describe('simctl contract: Simulator', () => {
  it('reuses an existing device of the type and runtime, boots it with bootstatus -b, and only shuts it down on dispose', async () => {
    const guest = simctlGuest();
    const sim = await Simulator.start(guest, { deviceType: 'iPhone 11', runtime: 'iOS 26.1' });
    expect(sim).toMatchObject({ udid: IPHONE_11, created: false, booted: true });
    await sim.dispose();
    expect(simctlCalls(guest)).toEqual([
      ['list', '-j', 'devices', 'devicetypes', 'runtimes'],
      ['bootstatus', IPHONE_11, '-b'],
      ['shutdown', IPHONE_11],
    ]);
  });

  it('creates a device when none exists (type found via the runtime), and deletes it on dispose', async () => {
    const guest = simctlGuest();
    const sim = await Simulator.start(guest, { deviceType: 'iPhone 17 Pro', name: 'checkout phone' });
    expect(sim).toMatchObject({ udid: CREATED, created: true, runtime: { name: 'iOS 26.1' } });
    await sim.dispose();
    await sim.dispose(); // idempotent
    expect(simctlCalls(guest)).toEqual([
      ['list', '-j', 'devices', 'devicetypes', 'runtimes'],
      ['create', 'checkout phone', 'com.apple.CoreSimulator.SimDeviceType.iPhone-17-Pro', 'com.apple.CoreSimulator.SimRuntime.iOS-26-1'],
      ['bootstatus', CREATED, '-b'],
      ['shutdown', CREATED],
      ['delete', CREATED],
    ]);
  });

  it('sends the status bar override flags Apple documents, with values simctl accepts', async () => {
    const guest = simctlGuest();
    const sim = await Simulator.start(guest, { deviceType: 'iPhone 11' });
    await sim.overrideStatusBar();
    const call = simctlCalls(guest).at(-1)!;
    expect(call).toEqual(['status_bar', IPHONE_11, 'override', '--time', '9:41', '--dataNetwork', 'wifi', '--wifiMode', 'active', '--wifiBars', '3', '--cellularMode', 'active', '--cellularBars', '4', '--batteryState', 'charged', '--batteryLevel', '100']);
    // Every flag and value checked against `simctl help status_bar`.
    const help = new Map<string, string>();
    for (const match of STATUS_BAR_HELP.matchAll(/(--\w+) <[^>]+>\n\s+([^\n]+)/g)) help.set(match[1]!, match[2]!);
    for (let i = 3; i < call.length; i += 2) {
      const flag = call[i]!;
      const value = call[i + 1]!;
      expect(help.has(flag), `${flag} is in simctl help status_bar`).toBe(true);
      const allowed = help.get(flag)!;
      const choices = /must be one of (.*)\.$/.exec(allowed)?.[1];
      const range = /must be (\d+)-(\d+)/.exec(allowed);
      if (choices) expect(choices.match(/'([^']+)'/g)!.map((c) => c.slice(1, -1))).toContain(value);
      if (range) expect(Number(value)).toBeGreaterThanOrEqual(Number(range[1])), expect(Number(value)).toBeLessThanOrEqual(Number(range[2]));
    }
    expect(Object.keys(CLEAN_STATUS_BAR)).toHaveLength(8);
    await sim.dispose();
    expect(simctlCalls(guest).slice(-2)).toEqual([['status_bar', IPHONE_11, 'clear'], ['shutdown', IPHONE_11]]);
  });

  it('drives appearance, openurl, install and launch with the exact argv', async () => {
    const guest = simctlGuest();
    const sim = await Simulator.start(guest, { deviceType: 'com.apple.CoreSimulator.SimDeviceType.iPhone-11', runtime: '26.1' });
    await sim.setAppearance('dark');
    await sim.openUrl('https://example.test/cart?x=1&y=2');
    await sim.install('/Users/admin/Build/Shop.app');
    expect(await sim.launch('com.example.shop', ['-UITests', 'YES'])).toBe(4242);
    expect(simctlCalls(guest).slice(2)).toEqual([
      ['ui', IPHONE_11, 'appearance', 'dark'],
      ['openurl', IPHONE_11, 'https://example.test/cart?x=1&y=2'],
      ['install', IPHONE_11, '/Users/admin/Build/Shop.app'],
      ['launch', IPHONE_11, 'com.example.shop', '-UITests', 'YES'],
    ]);
  });

  it('takes a screenshot with io screenshot --type=png, downloads it and removes the temp file', async () => {
    const png = encodePng({ width: 4, height: 4, data: Buffer.alloc(64, 200) });
    let guest!: FakeGuestSession;
    guest = simctlGuest((args) => {
      if (args[0] === 'io') {
        guest.files.set(args[4]!, png);
        return {};
      }
      return undefined;
    });
    const sim = await Simulator.start(guest, { deviceType: 'iPhone 11' });
    expect((await sim.screenshot()).equals(png)).toBe(true);
    const io = simctlCalls(guest).find((c) => c[0] === 'io')!;
    expect(io.slice(0, 4)).toEqual(['io', IPHONE_11, 'screenshot', '--type=png']);
    expect(io[4]).toMatch(/^\/tmp\/macvm-sim-[0-9a-f]{12}\.png$/);
    expect(guest.commands).toContainEqual(['<sftp read>', io[4]]);
    expect(guest.commands).toContainEqual(['rm', '-f', io[4]]);
  });

  it('turns a simctl failure into MACVM_SIMULATOR_ERROR carrying its stderr', async () => {
    const guest = simctlGuest((args) => (args[0] === 'bootstatus' ? { exitCode: 149, stderr: 'Invalid device or device pair: D40CE982-3E65-4756-8162-90EFE50AF7FA' } : undefined));
    try {
      await Simulator.start(guest, { deviceType: 'iPhone 11' });
      expect.fail('started');
    } catch (error) {
      expect(isMacvmError(error, 'MACVM_SIMULATOR_ERROR')).toBe(true);
      expect((error as Error).message).toContain('Invalid device or device pair');
    }
  });

  it('names what is installed when the device type or runtime is unknown', async () => {
    await expect(Simulator.start(simctlGuest(), { deviceType: 'iPhone 99' })).rejects.toThrow(/No simulator device type "iPhone 99".*iPhone 11/);
    await expect(Simulator.start(simctlGuest(), { deviceType: 'iPhone 11', runtime: 'iOS 12.4' })).rejects.toThrow(/No simulator runtime "iOS 12.4".*iOS 26.1/);
  });
});
