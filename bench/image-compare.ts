/**
 * Decode + compare of a 2880×1800 pair, end to end from PNG files on disk to a verdict (and a
 * diff PNG written when they differ), side by side:
 *   macvm       comparePngs: byte check, own decoder, band-limited pixelmatch, own encoder
 *   pixelmatch  pngjs decode of both + full pixelmatch pass + pngjs encode of the diff
 *   odiff CLI   odiff-bin 4.3.8's binary, one process per comparison
 *   odiff srv   the same binary in --server mode (no spawn per comparison)
 * Medians of several runs; nothing is asserted.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';
import { comparePngs } from '../src/snapshot/compare.js';
import { encodePng } from '../src/snapshot/png.js';
import { syntheticPage } from '../test/fixtures/snapshot/synthetic-page.js';

const run$ = promisify(execFile);
const require = createRequire(import.meta.url);
const WIDTH = 2880;
const HEIGHT = 1800;
const RUNS = 7;

interface Pair {
  label: string;
  base: string;
  actual: string;
}

/** Median and minimum of RUNS timed calls after a warm-up. On a shared, busy host the minimum is the closest to the uncontended cost. */
async function measure(fn: () => Promise<unknown>): Promise<{ median: number; min: number }> {
  await fn(); // warm-up (JIT, page cache)
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)]!, min: samples[0]! };
}

function pngjsWrite(data: Buffer, options: { filterType?: number } = {}): Buffer {
  const png = new PNG({ width: WIDTH, height: HEIGHT });
  data.copy(png.data);
  return PNG.sync.write(png, options);
}

export async function run(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-compare-'));
  const odiffPackage = dirname(require.resolve('odiff-bin/package.json'));
  const odiffBin = join(odiffPackage, 'bin', 'odiff.exe');
  const { ODiffServer } = require('odiff-bin') as { ODiffServer: new (binary?: string) => { compare(a: string, b: string, d: string, o?: object): Promise<unknown>; stop(): void } };
  const server = new ODiffServer(odiffBin);
  try {
    const page = syntheticPage({ width: WIDTH, height: HEIGHT, seed: 42 });
    // A small, realistic change: a button label and a price differ.
    const changed = syntheticPage({ width: WIDTH, height: HEIGHT, seed: 42, changes: [{ x: 1400, y: 900, width: 180, height: 28 }, { x: 2300, y: 300, width: 60, height: 24, rgb: [30, 30, 30] }] });
    const files = {
      base: join(dir, 'base.png'),
      same: join(dir, 'same.png'),
      reencoded: join(dir, 'reencoded.png'),
      changed: join(dir, 'changed.png'),
    };
    const baseBytes = pngjsWrite(page.data);
    await writeFile(files.base, baseBytes);
    await writeFile(files.same, baseBytes);
    await writeFile(files.reencoded, pngjsWrite(page.data, { filterType: 4 }));
    await writeFile(files.changed, pngjsWrite(changed.data));
    const pairs: Pair[] = [
      { label: 'identical files', base: files.base, actual: files.same },
      { label: 'same pixels, other encoding', base: files.base, actual: files.reencoded },
      { label: 'differing (small change)', base: files.base, actual: files.changed },
    ];
    const diffPath = join(dir, 'diff.png');

    const ours = async (pair: Pair) => {
      const [a, b] = await Promise.all([readFile(pair.base), readFile(pair.actual)]);
      const result = await comparePngs(a, b, { diffImage: true });
      if (result.diff) await writeFile(diffPath, encodePng(result.diff, { level: 1, filter: 'none' }));
      return result.diffPixels;
    };
    const plain = async (pair: Pair) => {
      const [a, b] = await Promise.all([readFile(pair.base), readFile(pair.actual)]);
      const ia = PNG.sync.read(a);
      const ib = PNG.sync.read(b);
      const out = new PNG({ width: ia.width, height: ia.height });
      const count = pixelmatch(ia.data, ib.data, out.data, ia.width, ia.height, { threshold: 0.1 });
      if (count > 0) await writeFile(diffPath, PNG.sync.write(out));
      return count;
    };
    const odiffCli = async (pair: Pair) => {
      // Exit code 22 means "pixels differ": a verdict, not a failure.
      await run$(odiffBin, [pair.base, pair.actual, diffPath, '--antialiasing']).catch((error: { code?: number }) => {
        if (error.code !== 22) throw error;
      });
    };
    const odiffServer = (pair: Pair) => server.compare(pair.base, pair.actual, diffPath, { antialiasing: true });

    console.log(`decode + compare of ${WIDTH}×${HEIGHT} PNG files, ms: median (min) of ${RUNS} runs`);
    const columns = ['macvm', 'pixelmatch', 'odiff CLI', 'odiff server'];
    console.log(['pair'.padEnd(30), ...columns.map((c) => c.padStart(15)), '  median ratio vs macvm: pixelmatch / odiff CLI / odiff server'].join(''));
    for (const pair of pairs) {
      const figures = [await measure(() => ours(pair)), await measure(() => plain(pair)), await measure(() => odiffCli(pair)), await measure(() => odiffServer(pair))];
      const cell = (f: { median: number; min: number }) => `${f.median.toFixed(1)} (${f.min.toFixed(1)})`.padStart(15);
      const ratio = (f: { median: number }) => `${(f.median / figures[0]!.median).toFixed(1)}×`;
      console.log([pair.label.padEnd(30), ...figures.map(cell), `  ${figures.slice(1).map(ratio).join(' / ')}`].join(''));
    }
    console.log(`diff pixels (macvm / pixelmatch): ${await ours(pairs[2]!)} / ${await plain(pairs[2]!)}`);
  } finally {
    server.stop(); // (odiff-bin logs "server exited unexpectedly" when stopped; harmless)
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
