import { describe, expect, it } from 'vitest';
import { guestCapabilities, LINUX_CHROME_ARGS, mergeArgs } from '../../src/guest/webdriver-capabilities.js';
import { driverCrashedError, driverMissingError, driverNotEnabledError, mentionsPortInUse, mentionsRemoteAutomation } from '../../src/guest/webdriver-errors.js';

type ChromeOptions = { args: string[]; binary?: string };

describe('guestCapabilities', () => {
  it('gives Linux chrome the headless/no-sandbox args, the found binary and a profile in the driver temp dir', () => {
    const caps = guestCapabilities({ browserName: 'chrome', os: 'linux', tempDir: '/tmp/macvm-driver.abc', browserBinary: '/usr/bin/chromium' });
    const chrome = caps['goog:chromeOptions'] as ChromeOptions;
    expect(caps.browserName).toBe('chrome');
    expect(chrome.binary).toBe('/usr/bin/chromium');
    for (const arg of ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run']) expect(chrome.args).toContain(arg);
    expect(chrome.args).toContain('--user-data-dir=/tmp/macvm-driver.abc/profile');
  });

  it('lets the user override a default arg and the binary, and keeps their other capabilities', () => {
    const caps = guestCapabilities(
      { browserName: 'chrome', os: 'linux', tempDir: '/t', browserBinary: '/usr/bin/chromium' },
      { 'goog:chromeOptions': { args: ['--headless=old', '--window-size=800,600'], binary: '/opt/chrome' }, acceptInsecureCerts: true },
    );
    const chrome = caps['goog:chromeOptions'] as ChromeOptions;
    expect(chrome.args.filter((a) => a.startsWith('--headless'))).toEqual(['--headless=old']);
    expect(chrome.args).toContain('--window-size=800,600');
    expect(chrome.binary).toBe('/opt/chrome');
    expect(caps.acceptInsecureCerts).toBe(true);
  });

  it('adds no Linux-only args to chrome on macOS', () => {
    const chrome = guestCapabilities({ browserName: 'chrome', os: 'macos', tempDir: '/t' })['goog:chromeOptions'] as ChromeOptions;
    expect(chrome.args.some((a) => (LINUX_CHROME_ARGS as string[]).includes(a))).toBe(false);
    expect(chrome.binary).toBeUndefined();
  });

  it('asks for classic WebDriver for Safari (no BiDi) and keeps browserName safari', () => {
    const caps = guestCapabilities({ browserName: 'safari', os: 'macos', tempDir: '/t' }, { browserName: 'chrome', 'safari:automaticInspection': true } as WebdriverIO.Capabilities);
    expect(caps.browserName).toBe('safari');
    expect(caps['wdio:enforceWebDriverClassic']).toBe(true);
    expect((caps as Record<string, unknown>)['safari:automaticInspection']).toBe(true);
  });

  it('mergeArgs treats --x and --x=value as the same switch', () => {
    expect(mergeArgs(['--a', '--b=1', '--c'], ['--b=2', '--a=z'])).toEqual(['--c', '--b=2', '--a=z']);
  });
});

describe('driver error classification', () => {
  it('recognises safaridriver asking for remote automation (session error and --enable advice)', () => {
    expect(mentionsRemoteAutomation("Could not create a session: You must enable the 'Allow Remote Automation' option in Safari's Develop menu to control Safari via WebDriver.")).toBe(true);
    expect(mentionsRemoteAutomation('safaridriver: to enable, run `safaridriver --enable`')).toBe(true);
    expect(mentionsRemoteAutomation('ChromeDriver was started successfully on port 9515.')).toBe(false);
  });

  it('recognises a port another process holds', () => {
    expect(mentionsPortInUse('[1.0][SEVERE]: bind() failed: Address already in use (98)\nIPv4 port not available. Exiting...')).toBe(true);
    expect(mentionsPortInUse('Starting ChromeDriver 156.0 on port 9515')).toBe(false);
  });

  it('builds coded errors that carry the driver log and say what to do', () => {
    const notEnabled = driverNotEnabledError('Allow Remote Automation is off', { pid: 1 });
    expect(notEnabled.code).toBe('MACVM_DRIVER_NOT_ENABLED');
    expect(notEnabled.message).toContain('sudo safaridriver --enable');
    expect(notEnabled.message).toContain('Allow Remote Automation is off');
    expect(notEnabled.details.logTail).toBe('Allow Remote Automation is off');

    const missing = driverMissingError('chrome', 'linux', 'chromedriver', {});
    expect(missing.code).toBe('MACVM_DRIVER_MISSING');
    expect(missing.message).toContain('chromium-driver');

    const crashed = driverCrashedError('chromedriver exited.', 'line one\nline two', {});
    expect(crashed.code).toBe('MACVM_DRIVER_CRASHED');
    expect(crashed.message).toContain('  line two');
  });
});
