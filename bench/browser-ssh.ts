/**
 * What a browser test costs through the ssh provider: attach (SSH connect), driver start +
 * WebDriver session, page load over exposeHostPort, a viewport screenshot, a stitched
 * full-page screenshot of a 3000 px page, and teardown. The "guest" is this host behind a
 * real OpenSSH sshd, so the figures are the harness's own overhead, not a VM's.
 */
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fullPageScreenshot } from '../src/guest/full-page-screenshot.js';
import { createSshProvider } from '../src/vm/ssh/provider.js';
import { startMacVM } from '../src/machine/start.js';
import { startSshd } from '../test/support/sshd.js';

const ROUNDS = 3;
const PAGE = `<!doctype html><body style="margin:0">${['#f00', '#0f0', '#00f', '#ff0', '#f0f', '#0ff'].map((c) => `<div style="height:500px;background:${c}"></div>`).join('')}</body>`;

export async function run(): Promise<void> {
  const savedHome = process.env.MACVM_HOME;
  const home = mkdtempSync(join(tmpdir(), 'macvm-bench-browser-'));
  process.env.MACVM_HOME = home;
  const server = createServer((_request, response) => response.end(PAGE));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hostPort = (server.address() as { port: number }).port;
  const sshd = await startSshd();
  const samples: Record<string, number[]> = {};
  const time = async <T>(label: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    (samples[label] ??= []).push(performance.now() - started);
    return result;
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const provider = createSshProvider({ host: sshd.host, port: sshd.port, user: sshd.user, privateKeyPath: sshd.privateKeyPath, hostKey: sshd.hostKey, os: 'linux' });
      const vm = await time('attach (startMacVM, ssh)', () => startMacVM({ image: 'bench', provider, deadline: 60_000 }));
      try {
        const guestPort = await time('exposeHostPort', () => vm.exposeHostPort(hostPort));
        const browser = await time('driver up + session', () => vm.browser({ browserName: 'chrome' }));
        await time('page load', () => browser.url(`http://localhost:${guestPort}/`));
        await time('viewport screenshot', () => browser.takeScreenshot());
        await time('full-page screenshot (3000 px)', () => fullPageScreenshot(browser));
      } finally {
        await time('dispose (session, driver, forwards)', () => vm.dispose());
      }
    }
  } finally {
    await sshd.stop();
    await new Promise((resolve) => server.close(resolve));
    rmSync(home, { recursive: true, force: true });
    if (savedHome === undefined) delete process.env.MACVM_HOME;
    else process.env.MACVM_HOME = savedHome;
  }
  console.log(`${ROUNDS} rounds, median (min–max) ms:`);
  for (const [label, values] of Object.entries(samples)) {
    const sorted = [...values].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(`  ${label.padEnd(40)} ${median.toFixed(0).padStart(7)}  (${sorted[0]!.toFixed(0)}–${sorted[sorted.length - 1]!.toFixed(0)})`);
  }
}
