import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMacvmError, type MacvmErrorCode } from '../../src/errors.js';
import '../../src/fixtures/image-snapshot.js';
import { fullPageScreenshot } from '../../src/guest/full-page-screenshot.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { createSshProvider } from '../../src/vm/ssh/provider.js';
import { startMacVM } from '../../src/machine/start.js';
import { startSshd } from '../support/sshd.js';
import { refusesConnections as refuses } from '../support/ports.js';

// Real parts end to end: the ssh provider attaches to this host through a REAL OpenSSH
// sshd on 127.0.0.1; the "guest" runs Debian's chromedriver + chromium; the page is served
// by this test on the host's loopback and reached from the browser through exposeHostPort.

const BANDS: Array<[string, [number, number, number]]> = [
  ['#ff0000', [255, 0, 0]],
  ['#00ff00', [0, 255, 0]],
  ['#0000ff', [0, 0, 255]],
  ['#ffff00', [255, 255, 0]],
  ['#ff00ff', [255, 0, 255]],
  ['#00ffff', [0, 255, 255]],
];

const PAGES: Record<string, string> = {
  '/': `<!doctype html><html><head><style>
      body { margin: 0; background: #fff; font: 20px sans-serif; }
      #box { width: 200px; height: 120px; background: #3366cc; margin: 20px; }
    </style></head><body>
      <h1 id="title">Hello from the host</h1>
      <button id="go" onclick="document.getElementById('title').textContent = 'Clicked ' + (++window.clicks)">Go</button>
      <div id="box"></div>
      <script>window.clicks = 0</script>
    </body></html>`,
  '/long': `<!doctype html><html><head><style>
      body { margin: 0; } .band { height: 500px; }
      header { position: fixed; top: 0; left: 0; right: 0; height: 40px; background: #000; }
    </style></head><body>
      <header></header>
      ${BANDS.map(([css]) => `<div class="band" style="background:${css}"></div>`).join('')}
    </body></html>`,
};

let sshd: Awaited<ReturnType<typeof startSshd>>;
let server: Server;
let serverPort: number;
let home: string;
const savedHome = process.env.MACVM_HOME;
const savedReports = process.env.MACVM_REPORTS_DIR;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'macvm-browser-home-'));
  process.env.MACVM_HOME = home;
  // Snapshot mismatch artifacts (if any) go here, not into the project's reports/.
  process.env.MACVM_REPORTS_DIR = join(home, 'reports');
  sshd = await startSshd();
  server = createServer((request, response) => {
    const page = PAGES[request.url ?? '/'];
    response.writeHead(page ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    response.end(page ?? 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = (server.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await sshd?.stop();
  if (savedReports === undefined) delete process.env.MACVM_REPORTS_DIR;
  else process.env.MACVM_REPORTS_DIR = savedReports;
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  rmSync(home, { recursive: true, force: true });
});

function attach(): Promise<MacVM> {
  const provider = createSshProvider({ host: sshd.host, port: sshd.port, user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey, os: 'linux', arch: 'x86_64' });
  return startMacVM({ image: 'this-host-over-sshd', provider, deadline: 30_000 });
}

/** PIDs whose command line contains `marker` (pgrep -f, without matching ourselves). */
function pidsWithArg(marker: string): number[] {
  return processes().filter((p) => p.cmdline.includes(marker)).map((p) => p.pid);
}

/** PIDs whose working directory is `dir` (the guest driver runs in its temp dir). */
function pidsWithCwd(dir: string): number[] {
  return processes().filter((p) => p.cwd === dir).map((p) => p.pid);
}

function processes(): Array<{ pid: number; cmdline: string; cwd: string }> {
  const list = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {}
      list.push({ pid: Number(name), cmdline, cwd });
    } catch {}
  }
  return list;
}

async function expectCode(work: Promise<unknown>, code: MacvmErrorCode): Promise<Error> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isMacvmError(error) ? error.code : error).toBe(code);
  return error as Error;
}

function pixel(png: PNG, x: number, y: number): [number, number, number] {
  const i = (y * png.width + x) * 4;
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
}

describe('chromium in the guest over the ssh provider', () => {
  it('reaches a host page through exposeHostPort, clicks, reads the DOM, matches a screenshot baseline, and leaves nothing running', async () => {
    const baselineDir = mkdtempSync(join(tmpdir(), 'macvm-browser-baseline-'));
    const vm = await attach();
    let tempDirs: string[] = [];
    let driverHostPorts: number[] = [];
    let guestPort = 0;
    try {
      guestPort = await vm.exposeHostPort(serverPort);
      const baseline = join(baselineDir, 'hello.png');
      for (const round of [1, 2]) {
        const browser = await vm.browser({ browserName: 'chrome', capabilities: { 'goog:chromeOptions': { args: ['--window-size=640,480'] } } });
        const userDataDir = (browser.capabilities as { chrome?: { userDataDir?: string } }).chrome?.userDataDir;
        expect(userDataDir).toMatch(/macvm-driver\.[^/]+\/profile$/);
        tempDirs.push(dirname(userDataDir!));
        driverHostPorts.push(browser.options.port!);
        // The driver runs in its temp dir (its browser inherits that cwd).
        expect(processes().filter((p) => p.cwd === dirname(userDataDir!) && p.cmdline.includes('chromedriver'))).toHaveLength(1);

        // localhost: sshd binds the reverse forward on the guest's loopback; Chrome resolves it to 127.0.0.1.
        await browser.url(`http://localhost:${guestPort}/`);
        expect(await browser.$('#title').getText()).toBe('Hello from the host');
        // Round 1 writes the baseline, round 2 (a fresh browser) must match it; 'missing' never rewrites one.
        expect(existsSync(baseline)).toBe(round === 2);
        const before = round === 2 ? readFileSync(baseline) : undefined;
        const shot = Buffer.from(await browser.takeScreenshot(), 'base64');
        await expect(shot).toMatchImageSnapshot({ name: 'hello', pathTemplate: join(baselineDir, '{name}.png'), update: 'missing' });
        expect(existsSync(baseline)).toBe(true);
        if (before) expect(readFileSync(baseline).equals(before)).toBe(true);

        await browser.$('#go').click();
        await browser.$('#go').click();
        expect(await browser.$('#title').getText()).toBe('Clicked 2');
      }
    } finally {
      await vm.dispose();
      rmSync(baselineDir, { recursive: true, force: true });
    }
    expect(tempDirs).toHaveLength(2);
    for (const dir of tempDirs) {
      expect(existsSync(dir)).toBe(false);
      expect(pidsWithArg(dir)).toEqual([]); // no chromium with our profile, no driver
      expect(pidsWithCwd(dir)).toEqual([]);
    }
    for (const port of driverHostPorts) expect(await refuses(port)).toBe(true);
    expect(await refuses(guestPort)).toBe(true);
  });

  it('stitches a full-page screenshot of a 3000 px page: bands where they belong, the fixed header once, scroll restored', async () => {
    const vm = await attach();
    try {
      const guestPort = await vm.exposeHostPort(serverPort);
      for (const scale of [1, 2]) {
        const browser = await vm.browser({ browserName: 'chrome', capabilities: { 'goog:chromeOptions': { args: ['--window-size=500,400', `--force-device-scale-factor=${scale}`] } } });
        await browser.url(`http://127.0.0.1:${guestPort}/long`);
        await browser.execute(() => window.scrollTo(0, 1234));
        const png = PNG.sync.read(await fullPageScreenshot(browser));
        const viewport = await browser.execute(() => ({ width: document.documentElement.clientWidth, height: document.documentElement.clientHeight, y: window.scrollY }));
        expect(viewport.y).toBe(1234);
        expect(viewport.height).toBeLessThan(3000); // really several frames
        expect([png.width, png.height]).toEqual([viewport.width * scale, 3000 * scale]);
        expect(pixel(png, 10, 20 * scale)).toEqual([0, 0, 0]); // the fixed header, in the first frame
        BANDS.forEach(([, rgb], band) => {
          for (const y of [band * 500 + 60, band * 500 + 250, band * 500 + 499]) expect(pixel(png, 10, y * scale), `band ${band} at ${y}`).toEqual(rgb);
        });
        // Where later frames began, the fixed header was hidden: band colour, not black.
        for (let top = viewport.height; top < 3000 - viewport.height; top += viewport.height) {
          expect(pixel(png, 10, (top + 20) * scale)).toEqual(BANDS[Math.floor((top + 20) / 500)]![1]);
        }
        expect(pixel(png, 10, 2999 * scale)).toEqual(BANDS[5]![1]);
      }
    } finally {
      await vm.dispose();
    }
  });

  it('says which package to install when the driver is missing, and starts nothing', async () => {
    const vm = await attach();
    try {
      const before = readdirSync(tmpdir()).filter((name) => name.startsWith('macvm-driver.')).length;
      const error = await expectCode(vm.browser({ browserName: 'chrome', driverPath: '/nonexistent/chromedriver' }), 'MACVM_DRIVER_MISSING');
      expect(error.message).toContain('chromium-driver');
      expect(readdirSync(tmpdir()).filter((name) => name.startsWith('macvm-driver.')).length).toBe(before);
      await expectCode(vm.browser({ browserName: 'safari' }), 'MACVM_NOT_SUPPORTED');
    } finally {
      await vm.dispose();
    }
  });

  it('reports a driver that dies at start, or never answers /status, with its own log, and stops it', async () => {
    const scripts = mkdtempSync(join(tmpdir(), 'macvm-fake-driver-'));
    const vm = await attach();
    try {
      const dying = join(scripts, 'dying-driver');
      writeFileSync(dying, '#!/bin/sh\necho "dying-driver: libfoo.so.1 not found" >&2\nexit 127\n');
      const silent = join(scripts, 'silent-driver');
      writeFileSync(silent, '#!/bin/sh\necho "silent-driver listening nowhere"\nwhile :; do sleep 1; done\n');
      chmodSync(dying, 0o755);
      chmodSync(silent, 0o755);

      const died = await expectCode(vm.browser({ browserName: 'chrome', driverPath: dying }), 'MACVM_DRIVER_CRASHED');
      expect(died.message).toContain('libfoo.so.1 not found');

      const hung = await expectCode(vm.browser({ browserName: 'chrome', driverPath: silent, readyTimeoutMs: 2_000 }), 'MACVM_DRIVER_CRASHED');
      expect(hung.message).toContain('did not answer /status');
      expect(hung.message).toContain('silent-driver listening nowhere');
      expect(pidsWithArg(silent)).toEqual([]);
      expect(existsSync(String((hung as { details?: { tempDir?: string } }).details?.tempDir))).toBe(false);
    } finally {
      await vm.dispose();
      rmSync(scripts, { recursive: true, force: true });
    }
  });
});
