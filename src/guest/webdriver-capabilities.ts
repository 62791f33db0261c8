import type {} from 'webdriverio';
import type { GuestOS } from '../shared/guest.js';
import type { BrowserName } from './webdriver-errors.js';

/**
 * Chromium in a Linux guest has no display, often runs as root, and has a tiny /dev/shm.
 * --remote-debugging-pipe: in a qemu guest chromium failed to hand chromedriver its
 * DevTools port through the profile's DevToolsActivePort file; the pipe avoids that file.
 */
export const LINUX_CHROME_ARGS: readonly string[] = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--remote-debugging-pipe',
];

export interface CapabilityContext {
  browserName: BrowserName;
  os: GuestOS;
  /** The driver's private temp dir in the guest; the chrome profile goes under it (and goes with it). */
  tempDir: string;
  /** The browser binary found in the guest (chromium, google-chrome), when the user did not name one. */
  browserBinary?: string;
}

type ChromeOptions = { args?: string[]; binary?: string; [key: string]: unknown };

/**
 * The capabilities sent to the guest's driver: the user's, plus what a guest needs.
 * The user's choices win: an arg with the same --name replaces the default one.
 */
export function guestCapabilities(context: CapabilityContext, user: WebdriverIO.Capabilities = {}): WebdriverIO.Capabilities {
  if (context.browserName === 'safari') {
    // Safari has no BiDi; without this webdriverio 9 asks for a websocket Safari never opens.
    return { 'wdio:enforceWebDriverClassic': true, ...user, browserName: 'safari' };
  }
  const userChrome = (user['goog:chromeOptions'] ?? {}) as ChromeOptions;
  const defaults = context.os === 'linux' ? [...LINUX_CHROME_ARGS] : [];
  // A profile inside the driver's temp dir: removed with it, and a unique marker in the
  // browser's command line that cleanup (and tests) can recognise.
  defaults.push(`--user-data-dir=${context.tempDir}/profile`);
  const args = mergeArgs(defaults, userChrome.args ?? []);
  const chromeOptions: ChromeOptions = { ...userChrome, args };
  if (!userChrome.binary && context.browserBinary) chromeOptions.binary = context.browserBinary;
  return { ...user, browserName: 'chrome', 'goog:chromeOptions': chromeOptions };
}

/** Defaults first, then the user's; a user arg `--x=...` or `--x` drops the default `--x`. */
export function mergeArgs(defaults: readonly string[], user: readonly string[]): string[] {
  const userNames = new Set(user.map(argName));
  // --headless and --headless=new are the same switch.
  return [...defaults.filter((arg) => !userNames.has(argName(arg))), ...user];
}

function argName(arg: string): string {
  const index = arg.indexOf('=');
  return index === -1 ? arg : arg.slice(0, index);
}
