/**
 * vm.browser() inside a REAL VM: the linux-browser qemu guest (Debian's chromium and
 * chromium-driver, unpacked from .debs into the image), booted under TCG through the real
 * startMacVM. The page is served by this test on the host's 127.0.0.1 and reached from the
 * guest's browser through vm.exposeHostPort (a reverse forward over the guest's dropbear).
 * The screenshot is matched against the committed baseline in __image_snapshots__/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/fixtures/image-snapshot.js';
import { parseSidecar, type SnapshotEnvironment } from '../../src/snapshot/environment.js';
import { setReportsDir } from '../../src/snapshot/settings.js';
import type { MacVM } from '../../src/machine/macvm.js';
import { LINUX_BROWSER_CPUS, LINUX_BROWSER_MEMORY } from '../../src/vm/qemu/image/build-linux-browser.js';
import { startMacVM } from '../../src/machine/start.js';
import { createTestHome, type TestHome } from '../support/vm-home.js';

const WINDOW = { width: 640, height: 400 };
const BASELINE = join(dirname(fileURLToPath(import.meta.url)), '__image_snapshots__', 'browser-qemu.test.ts', 'host-page.png');

/**
 * What the pixels depend on: chromium's software rendering in a headless window of this
 * size. Deliberately no guestBuild: a kernel or chromium security update in Debian must
 * not turn the committed baseline into an "other environment"; if such an update really
 * changes the picture, the pixel comparison says so.
 */
const ENVIRONMENT: SnapshotEnvironment = {
  provider: 'qemu',
  guestOs: 'linux',
  gpu: 'none',
  renderer: 'chromium headless (software)',
  display: { ...WINDOW, scale: 1 },
};

// Flat colours and one large DejaVu heading: little anti-aliasing to drift between builds.
const PAGE = `<!doctype html><html><head><style>
    html, body { margin: 0; background: #ffffff; }
    body { font: bold 32px "DejaVu Sans", sans-serif; color: #1a1a1a; }
    h1 { margin: 0; padding: 24px; font-size: 32px; }
    .row { display: flex; gap: 20px; padding: 0 24px; }
    .box { width: 180px; height: 120px; }
    button { margin: 24px; width: 160px; height: 48px; font: bold 20px "DejaVu Sans", sans-serif; background: #222222; color: #ffffff; border: 0; }
  </style></head><body>
    <h1 id="title">Hello from the host</h1>
    <div class="row"><div class="box" style="background:#d62828"></div><div class="box" style="background:#2a9d8f"></div><div class="box" style="background:#264de4"></div></div>
    <button id="go" onclick="document.getElementById('title').textContent = 'Clicked ' + (++window.clicks)">Go</button>
    <script>window.clicks = 0</script>
  </body></html>`;

let testHome: TestHome;
let vm: MacVM | undefined;
let server: Server;
let serverPort: number;
let reports: string;
const requests: string[] = [];

beforeAll(async () => {
  testHome = await createTestHome({ images: ['linux-browser'] });
  // A mismatch's expected/actual/diff PNGs go here, not into the project's reports/.
  reports = await mkdtemp(join(tmpdir(), 'macvm-browser-qemu-reports-'));
  setReportsDir(reports);
  server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    response.writeHead(request.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    response.end(request.url === '/' ? PAGE : 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = (server.address() as { port: number }).port;
  vm = await startMacVM({ image: 'linux-browser', provider: 'qemu', cpus: LINUX_BROWSER_CPUS, memory: LINUX_BROWSER_MEMORY, deadline: 120_000 });
});

afterAll(async () => {
  setReportsDir(undefined);
  try {
    await vm?.dispose();
    await new Promise((resolve) => server?.close(resolve));
    // Nothing left: no qemu process and no runtime dir of this home.
    expect(await testHome.leftovers()).toEqual({ runtimeDirs: [], qemuPids: [] });
  } finally {
    await testHome?.cleanup();
    if (reports) await rm(reports, { recursive: true, force: true });
  }
});

describe('chromium inside a real qemu guest (linux-browser)', () => {
  it('loads a host page through exposeHostPort, matches the committed baseline, clicks and reads the DOM', async () => {
    const guest = vm!;
    // The guest's own Debian chromedriver, the version the image was built with.
    const upstream = guest.facts.imageFacts.chromedriver?.replace(/-.*$/, '');
    expect(upstream).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect((await guest.sh`chromedriver --version`).stdout).toContain(`ChromeDriver ${upstream}`);

    const guestPort = await guest.exposeHostPort(serverPort);
    const browser = await guest.browser({ browserName: 'chrome' });
    // The viewport itself, not the window around it: the screenshot is exactly this size.
    await browser.setViewport({ ...WINDOW, devicePixelRatio: 1 });
    // The guest's loopback, where dropbear listens for the reverse forward; Chrome tries ::1 first and falls back.
    await browser.url(`http://localhost:${guestPort}/`);
    expect(requests).toContain('GET /'); // served by this test, on the host
    expect(await browser.$('#title').getText()).toBe('Hello from the host');

    // The baseline is committed: compared here, never silently written (`macvm test -u` updates it).
    expect(existsSync(BASELINE), `${BASELINE} is missing`).toBe(true);
    const shot = Buffer.from(await browser.takeScreenshot(), 'base64');
    await expect(shot).toMatchImageSnapshot({ name: 'host-page', environment: ENVIRONMENT, maxDiffPixelRatio: 0.005 });
    expect(parseSidecar(readFileSync(`${BASELINE}.json`, 'utf8'))).toMatchObject(ENVIRONMENT);

    await browser.$('#go').click();
    await browser.$('#go').click();
    expect(await browser.$('#title').getText()).toBe('Clicked 2');
    expect(await browser.execute(() => (window as unknown as { clicks: number }).clicks)).toBe(2);
  });

  it('vm.restart(): the browser session is closed with the guest it lived in, and a new one loads the page at the same guest port', async () => {
    const guest = vm!;
    const guestPort = await guest.exposeHostPort(serverPort);
    const before = await guest.browser({ browserName: 'chrome' });
    await before.url(`http://localhost:${guestPort}/`);
    const served = requests.length;

    await guest.restart();
    // The old session's driver went with the guest's memory: it answers no more.
    await expect(before.getTitle()).rejects.toThrow();
    const after = await guest.browser({ browserName: 'chrome' });
    await after.url(`http://localhost:${guestPort}/`);
    expect(await after.$('#title').getText()).toBe('Hello from the host');
    expect(requests.length).toBeGreaterThan(served);
    // afterAll's dispose then closes `after` and has nothing of `before` left to close: it must not fail.
  });
});
