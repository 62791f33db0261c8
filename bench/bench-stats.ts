/**
 * What the benchmark statistics cost and how well they tell: the time of an exact
 * Mann-Whitney test, of the bootstrap ratio CI and of the batch-means CI (what runs report
 * now) at typical sample counts, and the A/A
 * false-positive rate and A/B power (10 % shift, 3 % noise) by fixed rounds per side, on
 * SIMULATED samples. Seeded, so the rates are the same on every machine; aa-false-alarms.ts
 * measures the same rate on real runs.
 */
import { performance } from 'node:perf_hooks';
import { batchRatioInterval } from '../src/bench/batch-means.js';
import { compareWithBaseline } from '../src/bench/compare.js';
import { mannWhitneyU } from '../src/bench/mann-whitney.js';
import { normalDeviate, seededRandom, type Random } from '../src/bench/prng.js';
import { ratioOfMedians } from '../src/bench/ratio.js';
import { summarize } from '../src/bench/stats.js';

function timeIt(label: string, repeat: number, work: () => void): void {
  work();
  const start = performance.now();
  for (let i = 0; i < repeat; i++) work();
  const ms = (performance.now() - start) / repeat;
  console.log(`  ${label.padEnd(44)} ${ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`}`);
}

function timings(random: Random, n: number, centre: number, spread: number): number[] {
  return Array.from({ length: n }, () => centre * Math.exp(spread * normalDeviate(random)));
}

export async function run(): Promise<void> {
  const random = seededRandom(1);
  console.log('cost per call');
  for (const n of [10, 30, 49]) {
    const a = timings(random, n, 100, 0.05);
    const b = timings(random, n, 105, 0.05);
    timeIt(`Mann-Whitney exact, ${n} vs ${n}`, n < 40 ? 50 : 5, () => mannWhitneyU(a, b));
  }
  const big = [timings(random, 200, 100, 0.05), timings(random, 200, 100, 0.05)] as const;
  timeIt('Mann-Whitney normal approx., 200 vs 200', 200, () => mannWhitneyU(big[0], big[1]));
  for (const n of [10, 50]) {
    const host = timings(random, n, 100, 0.05);
    const guest = timings(random, n, 150, 0.05);
    timeIt(`bootstrap ratio CI (2000 resamples), n = ${n}`, 5, () => ratioOfMedians(host, guest));
    timeIt(`batch-means ratio CI, n = ${n}`, 50, () => batchRatioInterval(host, guest));
  }

  console.log('\nrounds per side → A/A false positives, A/B power (10 % slower guest, 3 % noise), 1000 trials each');
  for (const rounds of [4, 6, 10, 20]) {
    const trials = seededRandom(rounds);
    let falsePositives = 0;
    let detected = 0;
    const workload = (guestCentre: number) => {
      const host = timings(trials, rounds, 100, 0.03);
      const guest = timings(trials, rounds, guestCentre, 0.03);
      return { host: summarize(host), guest: summarize(guest) };
    };
    for (let t = 0; t < 1000; t++) {
      const base = workload(200);
      if (compareWithBaseline(workload(200), base, 'aa').verdict !== '~') falsePositives++;
      if (compareWithBaseline(workload(220), base, 'ab').verdict === 'slower') detected++;
    }
    console.log(`  ${String(rounds).padStart(2)} rounds: A/A significant ${(falsePositives / 10).toFixed(1)} %, A/B detected ${(detected / 10).toFixed(1)} %`);
  }
}
