import { randomBytes } from 'node:crypto';
import { MacvmError } from '../errors.js';
import { readPngHeader } from '../snapshot/png.js';
import { quoteShellWord } from './shell-quote.js';
import { findDevice, parseSimctlList, resolveDeviceType, resolveRuntime, type SimDevice, type SimDeviceType, type SimRuntime } from './simctl-parse.js';
import type { GuestSession } from './types.js';

export interface SimulatorOptions {
  /** Device type name or identifier: 'iPhone 15', 'com.apple.CoreSimulator.SimDeviceType.iPad-Air-5th-generation'. */
  deviceType: string;
  /** Runtime name ('iOS 17.2'), version ('17.2') or identifier; default: the newest that supports the device type. */
  runtime?: string;
  /** Reuse an existing device of that type and runtime (default true); false always creates one. */
  reuse?: boolean;
  /** Name for a created device; default 'macvm <type> <random>'. */
  name?: string;
  /** Boot wait limit (bootstatus -b), ms. Default 300 000: a first boot migrates data and is slow. */
  bootTimeoutMs?: number;
}

export interface StatusBarOverride {
  time?: string;
  dataNetwork?: 'hide' | 'wifi' | '3g' | '4g' | 'lte' | 'lte-a' | 'lte+' | '5g' | '5g+' | '5g-uwb' | '5g-uc';
  wifiMode?: 'searching' | 'failed' | 'active';
  wifiBars?: 0 | 1 | 2 | 3;
  cellularMode?: 'notSupported' | 'searching' | 'failed' | 'active';
  cellularBars?: 0 | 1 | 2 | 3 | 4;
  operatorName?: string;
  batteryState?: 'charging' | 'charged' | 'discharging';
  batteryLevel?: number;
}

/** Apple's marketing status bar: 9:41, full battery, full signal. */
export const CLEAN_STATUS_BAR: StatusBarOverride = {
  time: '9:41',
  dataNetwork: 'wifi',
  wifiMode: 'active',
  wifiBars: 3,
  cellularMode: 'active',
  cellularBars: 4,
  batteryState: 'charged',
  batteryLevel: 100,
};

/** Runs `xcrun simctl <args>` in the guest; a non-zero exit is MACVM_SIMULATOR_ERROR with simctl's stderr. */
export async function simctl(session: GuestSession, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const command = ['xcrun', 'simctl', ...args].map(quoteShellWord).join(' ');
  const result = await session.exec(command, { reject: false, timeoutMs: options.timeoutMs ?? 120_000 });
  if (result.exitCode !== 0) {
    throw new MacvmError('MACVM_SIMULATOR_ERROR', `\`${command}\` failed (exit ${result.exitCode}): ${result.stderr.trim() || result.stdout.trim() || 'no output'}`, {
      hint: result.stderr.includes('xcrun: error') ? 'Xcode (not only the Command Line Tools) must be installed and selected in the guest: sudo xcode-select -s /Applications/Xcode.app' : undefined,
      details: { args: [...args], exitCode: result.exitCode, stderr: result.stderr },
    });
  }
  return result.stdout;
}

/**
 * An iOS (tvOS, watchOS...) simulator device in a macOS guest, driven through xcrun simctl.
 * dispose() undoes what start() did: a device it created is shut down and deleted; a device it
 * found shut down and booted is shut down again; a status bar override it set is cleared.
 */
export class Simulator implements AsyncDisposable {
  private statusBarOverridden = false;
  private disposed = false;

  private constructor(
    private readonly session: GuestSession,
    readonly udid: string,
    readonly name: string,
    readonly deviceType: SimDeviceType,
    readonly runtime: SimRuntime,
    /** This object created the device (and will delete it). */
    readonly created: boolean,
    /** This object booted the device (and will shut it down). */
    readonly booted: boolean,
  ) {}

  /** Finds or creates the device, boots it and waits until it has finished booting. */
  static async start(session: GuestSession, options: SimulatorOptions): Promise<Simulator> {
    const list = parseSimctlList(await simctl(session, ['list', '-j', 'devices', 'devicetypes', 'runtimes']));
    const type = resolveDeviceType(list, options.deviceType);
    const runtime = resolveRuntime(list, type, options.runtime);
    let device: SimDevice | undefined = options.reuse === false ? undefined : findDevice(list, type, runtime);
    let created = false;
    if (!device) {
      const name = options.name ?? `macvm ${type.name} ${randomBytes(3).toString('hex')}`;
      const udid = (await simctl(session, ['create', name, type.identifier, runtime.identifier])).trim();
      if (!/^[0-9A-F-]{36}$/i.test(udid)) {
        throw new MacvmError('MACVM_SIMULATOR_ERROR', `xcrun simctl create printed "${udid.slice(0, 200)}" instead of a device UDID.`);
      }
      device = { udid, name, state: 'Shutdown', isAvailable: true, deviceTypeIdentifier: type.identifier, runtimeIdentifier: runtime.identifier };
      created = true;
    }
    const needsBoot = device.state !== 'Booted';
    const simulator = new Simulator(session, device.udid, device.name, type, runtime, created, needsBoot);
    try {
      // bootstatus -b boots the device if needed and returns once it has finished booting.
      if (needsBoot) await simctl(session, ['bootstatus', device.udid, '-b'], { timeoutMs: options.bootTimeoutMs ?? 300_000 });
    } catch (error) {
      await simulator.dispose().catch(() => {});
      throw error;
    }
    return simulator;
  }

  /** Installs an .app that is already in the guest (upload it first with vm.upload). */
  async install(appPathInGuest: string): Promise<void> {
    await simctl(this.session, ['install', this.udid, appPathInGuest], { timeoutMs: 300_000 });
  }

  /** Launches an app; returns its process id. */
  async launch(bundleId: string, args: readonly string[] = []): Promise<number | undefined> {
    const out = await simctl(this.session, ['launch', this.udid, bundleId, ...args]);
    // simctl prints "<bundle id>: <pid>".
    const pid = /:\s*(\d+)\s*$/.exec(out.trim());
    return pid ? Number(pid[1]) : undefined;
  }

  async terminate(bundleId: string): Promise<void> {
    await simctl(this.session, ['terminate', this.udid, bundleId]);
  }

  async openUrl(url: string): Promise<void> {
    await simctl(this.session, ['openurl', this.udid, url]);
  }

  /** Status bar override; default CLEAN_STATUS_BAR (9:41, full battery, full signal). */
  async overrideStatusBar(override: StatusBarOverride = CLEAN_STATUS_BAR): Promise<void> {
    const flags = Object.entries(override).flatMap(([key, value]) => (value === undefined ? [] : [`--${key}`, String(value)]));
    if (flags.length === 0) throw new MacvmError('MACVM_BAD_ARGUMENT', 'overrideStatusBar needs at least one field.');
    await simctl(this.session, ['status_bar', this.udid, 'override', ...flags]);
    this.statusBarOverridden = true;
  }

  async clearStatusBar(): Promise<void> {
    await simctl(this.session, ['status_bar', this.udid, 'clear']);
    this.statusBarOverridden = false;
  }

  async setAppearance(appearance: 'light' | 'dark'): Promise<void> {
    await simctl(this.session, ['ui', this.udid, 'appearance', appearance]);
  }

  /** The device screen as PNG: `simctl io screenshot` into a guest temp file, downloaded, deleted. */
  async screenshot(): Promise<Buffer> {
    const path = `/tmp/macvm-sim-${randomBytes(6).toString('hex')}.png`;
    try {
      await simctl(this.session, ['io', this.udid, 'screenshot', '--type=png', path]);
      const png = await this.session.readFile(path);
      readPngHeader(png, { code: 'MACVM_PNG_INVALID', label: `the simulator screenshot ${path}` });
      return png;
    } finally {
      await this.session.exec(`rm -f ${quoteShellWord(path)}`, { reject: false, timeoutMs: 10_000 }).catch(() => {});
    }
  }

  /** Undoes what this object did to the device. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const errors: unknown[] = [];
    const attempt = async (args: string[]) => {
      try {
        await simctl(this.session, args);
      } catch (error) {
        errors.push(error);
      }
    };
    if (this.statusBarOverridden && !this.created) await attempt(['status_bar', this.udid, 'clear']);
    if (this.booted || this.created) await attempt(['shutdown', this.udid]);
    if (this.created) await attempt(['delete', this.udid]);
    // "Unable to shutdown device in current state: Shutdown" is not a failure of cleanup.
    const real = errors.filter((e) => !(e instanceof MacvmError && /current state: Shutdown/.test(String(e.details.stderr))));
    if (real.length > 0) throw real[0];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** vm.simulator(options): the lead hangs this on MacVM (registering dispose with vm.defer). */
export function startSimulator(session: GuestSession, options: SimulatorOptions): Promise<Simulator> {
  return Simulator.start(session, options);
}
