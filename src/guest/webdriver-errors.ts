import { MacvmError } from '../errors.js';
import type { GuestOS } from '../shared/guest.js';

export type BrowserName = 'chrome' | 'safari';

/** safaridriver says this (in its output, /status or the new-session error) until `safaridriver --enable` ran. */
export function mentionsRemoteAutomation(text: string): boolean {
  return /allow remote automation|safaridriver --enable|remote automation (is|must be)|must enable the .?allow remote automation/i.test(text);
}

/** The driver could not bind its port (another process took it first): try another port. */
export function mentionsPortInUse(text: string): boolean {
  return /address already in use|port not available|EADDRINUSE|bind\(\) (returned an )?error|bind\(\) failed/i.test(text);
}

export function driverMissingError(browserName: BrowserName, os: GuestOS, what: string, details: Record<string, unknown>): MacvmError {
  return new MacvmError('MACVM_DRIVER_MISSING', `${what} is not installed in the guest (${os}), so ${browserName} cannot be driven there.`, {
    hint: installHint(browserName, os),
    details: { browserName, os, ...details },
  });
}

function installHint(browserName: BrowserName, os: GuestOS): string {
  if (browserName === 'safari') {
    return 'safaridriver ships with macOS at /usr/bin/safaridriver; use a macOS golden image (and run `sudo safaridriver --enable` in it once), or pass driverPath if it lives elsewhere.';
  }
  return os === 'linux'
    ? 'Install the browser and its driver in the golden image: Debian/Ubuntu `apt-get install -y chromium chromium-driver` (Fedora: `dnf install chromium chromedriver`), or pass driverPath. With the qemu provider, the `linux-browser` image (`macvm image build linux-browser`) has both.'
    : 'Install Google Chrome and a matching chromedriver in the golden image (`brew install --cask google-chrome chromedriver`), or pass driverPath.';
}

/** `said`: what the driver answered (the new-session error), when that, not its log, gave it away. */
export function driverNotEnabledError(logTail: string, details: Record<string, unknown>, said?: string): MacvmError {
  return new MacvmError(
    'MACVM_DRIVER_NOT_ENABLED',
    `safaridriver refused to automate Safari: remote automation is not enabled in this guest.${said ? `\nIt said: ${said.trim()}` : ''}${tailBlock(logTail)}`,
    {
      hint: 'In the golden image, logged in as the user the tests use, run once: `sudo safaridriver --enable` (it turns on Develop ▸ Allow Remote Automation for that user), then re-snapshot the image.',
      details: { ...details, logTail, ...(said ? { driverSaid: said } : {}) },
    },
  );
}

export function driverCrashedError(reason: string, logTail: string, details: Record<string, unknown>, cause?: unknown): MacvmError {
  return new MacvmError('MACVM_DRIVER_CRASHED', `${reason}${tailBlock(logTail)}`, {
    hint: 'The driver\'s own log is above (and in details.logTail). A browser that will not start in a minimal guest usually lacks a display (use headless) or shared memory (--disable-dev-shm-usage).',
    details: { ...details, logTail },
    cause,
  });
}

function tailBlock(logTail: string): string {
  const tail = logTail.trim();
  return tail ? `\nDriver log (last lines):\n${tail.split('\n').map((line) => `  ${line}`).join('\n')}` : '\n(The driver wrote nothing to its log.)';
}
