/**
 * What a browser test costs in a REAL VM: the linux-browser qemu guest (Debian's chromium +
 * chromium-driver) under this host's accelerator (TCG here), 2 vCPUs / 2 GiB. Per round:
 * spawn to ready (startMacVM), exposeHostPort, chromedriver up + WebDriver session, a page
 * served on the host loaded through the reverse forward, a viewport screenshot, dispose —
 * and the sum from spawn to the screenshot. BROWSER_QEMU_ROUNDS sets the rounds (default 3).
 * Builds the image first if it is missing (not timed here; see README for build figures).
 */
import { createServer } from 'node:http';
import { homePaths } from '../src/vm/home.js';
import { buildLinuxBrowserImage, LINUX_BROWSER_CPUS, LINUX_BROWSER_MEMORY } from '../src/vm/qemu/image/build-linux-browser.js';
import { startMacVM } from '../src/machine/start.js';

const PAGE = '<!doctype html><body style="margin:0;font:24px sans-serif"><h1>Hello from the host</h1></body>';

export async function run(): Promise<void> {
  const rounds = Number(process.env.BROWSER_QEMU_ROUNDS ?? 3);
  await buildLinuxBrowserImage({ imageDir: homePaths().image('linux-browser') });
  const server = createServer((_request, response) => response.end(PAGE));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hostPort = (server.address() as { port: number }).port;
  const samples: Record<string, number[]> = {};
  const record = (label: string, ms: number) => (samples[label] ??= []).push(ms);
  const time = async <T>(label: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const result = await work();
    record(label, performance.now() - started);
    return result;
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const spawned = performance.now();
      const vm = await time('spawn → ready (startMacVM)', () => startMacVM({ image: 'linux-browser', provider: 'qemu', cpus: LINUX_BROWSER_CPUS, memory: LINUX_BROWSER_MEMORY, deadline: 120_000 }));
      try {
        const guestPort = await time('exposeHostPort', () => vm.exposeHostPort(hostPort));
        const browser = await time('driver up + session', () => vm.browser({ browserName: 'chrome' }));
        await time('page load', () => browser.url(`http://localhost:${guestPort}/`));
        await time('viewport screenshot', () => browser.takeScreenshot());
        record('spawn → screenshot (total)', performance.now() - spawned);
      } finally {
        await time('dispose (session, driver, VM, clone)', () => vm.dispose());
      }
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  console.log(`${rounds} rounds, linux-browser, ${LINUX_BROWSER_CPUS} vCPUs / ${LINUX_BROWSER_MEMORY}, median (min–max) s:`);
  for (const [label, values] of Object.entries(samples)) {
    const sorted = [...values].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const s = (ms: number) => (ms / 1000).toFixed(1);
    console.log(`  ${label.padEnd(40)} ${s(median).padStart(6)}  (${s(sorted[0]!)}–${s(sorted[sorted.length - 1]!)})`);
  }
}
