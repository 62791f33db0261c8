import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError, messageOf } from '../errors.js';
import type { GuestOS } from '../shared/guest.js';
import type { GuestSession, PortForward } from './types.js';
import { guestCapabilities } from './webdriver-capabilities.js';
import { GuestDriver, type DriverLaunch } from './webdriver-driver.js';
import {
  driverCrashedError,
  driverMissingError,
  driverNotEnabledError,
  mentionsPortInUse,
  mentionsRemoteAutomation,
  type BrowserName,
} from './webdriver-errors.js';

export type { BrowserName } from './webdriver-errors.js';

export interface BrowserOptions {
  browserName: BrowserName;
  /** Merged over what the guest needs (Linux chrome: headless, no sandbox, a private profile). */
  capabilities?: WebdriverIO.Capabilities;
  /** The driver in the guest; default `safaridriver` / `chromedriver` from the guest's PATH. */
  driverPath?: string;
  /** Guest port for the driver; default a random one (retried if taken). */
  driverPort?: number;
  /** Extra driver argv (after the port). */
  driverArgs?: string[];
  /** How long the driver may take to answer /status ready; default 30 s. */
  readyTimeoutMs?: number;
}

/** Who the browser runs in: the guest session and the guest's OS. */
export interface BrowserTarget {
  session: GuestSession;
  os: GuestOS;
}

export interface GuestBrowser {
  browser: WebdriverIO.Browser;
  driver: { pid: number; guestPort: number; hostPort: number; tempDir: string; logPath: string };
  /** Deletes the session, stops the driver (and its browser), closes the tunnel, removes temp files. Idempotent. */
  close(): Promise<void>;
}

const PORT_ATTEMPTS = 3;
const STATUS_INTERVAL_MS = 250;

/**
 * Starts a WebDriver server INSIDE the guest and returns a webdriverio session on it:
 *   1. launch the driver over the session (missing → MACVM_DRIVER_MISSING), detached, PID kept;
 *   2. tunnel its guest port to 127.0.0.1:<random> on the host over the same SSH connection;
 *   3. poll GET /status until ready (driver died → MACVM_DRIVER_CRASHED with its log;
 *      safaridriver without remote automation → MACVM_DRIVER_NOT_ENABLED);
 *   4. webdriverio remote() on the tunnel.
 * The driver binds the guest's loopback only: it is reachable through the tunnel and from
 * nowhere else (so chromedriver needs no --allowed-ips / --allowed-origins). chromedriver
 * builds the BiDi websocket URL from the request's Host header, so BiDi works through the
 * tunnel too. Whatever fails, everything started so far is stopped before the error is thrown.
 *
 * Host services: `vm.exposeHostPort(port)` returns a guest port bound on the guest's
 * 127.0.0.1. Chrome reaches it as `http://localhost:<port>/` (it falls back from ::1 to
 * 127.0.0.1) and as `http://127.0.0.1:<port>/`; both are tested. Prefer 127.0.0.1 for
 * browsers that resolve localhost to ::1 only.
 */
export async function startGuestBrowser(target: BrowserTarget, options: BrowserOptions): Promise<GuestBrowser> {
  const { browserName } = options;
  if (browserName !== 'chrome' && browserName !== 'safari') {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `browserName must be "chrome" or "safari", got ${JSON.stringify(browserName)}.`);
  }
  if (browserName === 'safari' && target.os !== 'macos') {
    throw new MacvmError('MACVM_NOT_SUPPORTED', 'Safari runs only in macOS guests; this guest runs Linux.', {
      hint: 'Use browserName: "chrome" here, or a macOS image for Safari.',
    });
  }
  if (options.driverPort !== undefined && (!Number.isInteger(options.driverPort) || options.driverPort < 1 || options.driverPort > 65535)) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `driverPort must be an integer 1–65535, got ${options.driverPort}.`);
  }
  const executable = options.driverPath ?? (browserName === 'safari' ? 'safaridriver' : 'chromedriver');
  const userChrome = (options.capabilities?.['goog:chromeOptions'] ?? {}) as { binary?: string };
  const browserCandidates = browserName === 'chrome' && target.os === 'linux' && !userChrome.binary ? ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'] : [];

  const { driver, browserBinary } = await launchOnFreePort(target, options, executable, browserCandidates);
  const cleanup = new Cleanup(driver);
  try {
    const forward = await target.session.forwardGuestPort(driver.port, { guestHost: '127.0.0.1' });
    cleanup.forward = forward;
    await waitForStatus(driver, forward.port, options.readyTimeoutMs ?? 30_000, browserName);

    const capabilities = guestCapabilities({ browserName, os: target.os, tempDir: driver.tempDir, browserBinary }, options.capabilities);
    const { remote } = await import('webdriverio');
    let browser: WebdriverIO.Browser;
    try {
      // No retries: a retried POST /session after a slow first one can leave a second browser behind,
      // and a refused session (Safari not enabled) would only be refused again.
      browser = await remote({ hostname: '127.0.0.1', port: forward.port, path: '/', protocol: 'http', capabilities, logLevel: 'warn', connectionRetryCount: 0 });
    } catch (error) {
      const tail = await driver.logTail();
      const text = `${messageOf(error)}\n${tail}`;
      const details = driverDetails(driver, forward.port);
      if (browserName === 'safari' && mentionsRemoteAutomation(text)) throw driverNotEnabledError(tail, details, messageOf(error));
      throw driverCrashedError(`${executable} answered /status but could not start a ${browserName} session: ${messageOf(error)}`, tail, details, error);
    }
    cleanup.browser = browser;
    return {
      browser,
      driver: driverDetails(driver, forward.port),
      close: () => cleanup.run(),
    };
  } catch (error) {
    await cleanup.run().catch(() => {});
    throw error;
  }
}

async function launchOnFreePort(
  target: BrowserTarget,
  options: BrowserOptions,
  executable: string,
  browserCandidates: string[],
): Promise<{ driver: GuestDriver; browserBinary?: string }> {
  for (let attempt = 1; ; attempt++) {
    // Below the usual ephemeral ranges (Linux 32768+, macOS 49152+), so outgoing connections rarely hold it.
    const port = options.driverPort ?? randomInt(20_000, 32_000);
    const launch: DriverLaunch = {
      executable,
      port,
      args: [...(options.browserName === 'safari' ? ['-p', String(port)] : [`--port=${port}`]), ...(options.driverArgs ?? [])],
      browserCandidates,
    };
    const outcome = await GuestDriver.launch(target.session, launch);
    if (outcome.kind === 'missing') {
      const what = outcome.what === 'driver' ? `${executable} (the WebDriver server)` : `A browser for ${executable} (looked for ${browserCandidates.join(', ')})`;
      throw driverMissingError(options.browserName, target.os, what, { executable, missing: outcome.what });
    }
    const { driver } = outcome;
    if (outcome.exitedLog === undefined) return outcome;
    const tail = outcome.exitedLog;
    await driver.stop().catch(() => {});
    if (mentionsPortInUse(tail) && options.driverPort === undefined && attempt < PORT_ATTEMPTS) continue;
    if (options.browserName === 'safari' && mentionsRemoteAutomation(tail)) throw driverNotEnabledError(tail, driverDetails(driver));
    throw driverCrashedError(`${executable} exited right after it started in the guest.`, tail, driverDetails(driver));
  }
}

/** GET /status on the tunnel until the driver says ready, it dies, or time runs out. */
async function waitForStatus(driver: GuestDriver, hostPort: number, timeoutMs: number, browserName: BrowserName): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(`http://127.0.0.1:${hostPort}/status`, { signal: AbortSignal.timeout(Math.max(250, Math.min(3_000, until - Date.now()))) });
      const body = (await response.json().catch(() => ({}))) as { value?: { ready?: boolean; message?: string } };
      if (response.ok && body.value?.ready !== false) return;
      last = `HTTP ${response.status}: ${body.value?.message ?? 'not ready'}`;
      if (browserName === 'safari' && mentionsRemoteAutomation(last)) throw driverNotEnabledError(await driver.logTail(), driverDetails(driver, hostPort), last);
    } catch (error) {
      if (error instanceof MacvmError) throw error;
      last = messageOf(error);
    }
    // Checking the process costs an SSH round trip: do it every 8th poll (~2 s).
    if (attempt % 8 === 7 && !(await driver.alive())) {
      const tail = await driver.logTail();
      if (browserName === 'safari' && mentionsRemoteAutomation(tail)) throw driverNotEnabledError(tail, driverDetails(driver, hostPort));
      throw driverCrashedError(`${driver.executable} exited in the guest before it answered /status.`, tail, driverDetails(driver, hostPort));
    }
    if (Date.now() >= until) {
      throw driverCrashedError(`${driver.executable} did not answer /status ready within ${(timeoutMs / 1000).toFixed(0)} s (last: ${last}).`, await driver.logTail(), driverDetails(driver, hostPort));
    }
    await sleep(STATUS_INTERVAL_MS);
  }
}

function driverDetails(driver: GuestDriver, hostPort = 0) {
  return { pid: driver.pid, guestPort: driver.port, hostPort, tempDir: driver.tempDir, logPath: driver.logPath };
}

/** Undoes what startGuestBrowser did, newest first; every step runs even if one fails. */
class Cleanup {
  browser?: WebdriverIO.Browser;
  forward?: PortForward;
  private done?: Promise<void>;

  constructor(private readonly driver: GuestDriver) {}

  run(): Promise<void> {
    this.done ??= this.runOnce();
    return this.done;
  }

  private async runOnce(): Promise<void> {
    const errors: unknown[] = [];
    if (this.browser) {
      // A hung browser must not hold the suite: the driver is killed next anyway.
      const browser = this.browser;
      await Promise.race([browser.deleteSession().catch(() => {}), sleep(15_000, undefined, { ref: false })]);
    }
    await this.driver.stop().catch((error: unknown) => errors.push(error));
    await this.forward?.close().catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
  }
}
