import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { BATCHES } from '../../src/bench/batch-means.js';
import { runBenchSuite } from '../../src/bench/bench-suite.js';
import { benchPaths } from '../../src/bench/history.js';
import type { BenchRun } from '../../src/shared/bench-records.js';
import type { BenchBuilder } from '../../src/bench/workloads.js';
import { isMacvmError } from '../../src/errors.js';
import { homePaths } from '../../src/vm/home.js';
import { startMacVM } from '../../src/machine/start.js';

// A REAL run against the qemu linux-test guest (busybox + dropbear, TCG here): commands timed
// inside the guest with busybox adjtimex, a JS function on this host's node uploaded into the
// guest with its glibc and loader, a guest/host ratio, two history lines and a regression
// verdict. Build the image first: `macvm image build linux-test`.
const haveImage = existsSync(join(homePaths().image('linux-test'), 'image.json'));
const reports = mkdtempSync(join(tmpdir(), 'macvm-bench-vm-'));
afterAll(() => rmSync(reports, { recursive: true, force: true }));

const loop = (guestLoops: number) => (b: BenchBuilder) => {
  b.command('i=0; while [ $i -lt $N ]; do i=$((i+1)); done', { name: 'sh loop', env: { N: '2000' }, guest: { env: { N: String(guestLoops) } } });
};

describe.skipIf(!haveImage)('bench against the qemu linux-test guest', () => {
  test('ratio with CI, raw samples, history lines, and a regression caught by the gate', async () => {
    const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: 512 });
    try {
      const facts = { provider: vm.facts.provider, image: vm.facts.image, guestOs: `${vm.facts.os} ${vm.facts.imageFacts.kernel ?? ''}`.trim(), cpus: vm.facts.cpus, memoryMiB: vm.facts.memoryMiB };
      const options = { reportsDir: reports, rounds: 10, warmup: 1, log: () => {} };
      const first = await runBenchSuite(
        'linux-test',
        vm,
        facts,
        (b) => {
          loop(2000)(b);
          b.fn('json round trip', () => JSON.parse(JSON.stringify({ list: Array.from({ length: 100 }, (_, i) => i) })), { timeMs: 50 });
        },
        options,
      );
      const run: BenchRun = first.run;
      expect(run.method).toMatchObject({ commandTimer: 'adjtimex', guestNode: 'uploaded-node', rounds: 10 });
      expect(run.environment).toMatchObject({ provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 512 });
      for (const w of run.workloads) {
        expect(w.guest.samples).toHaveLength(10);
        expect(w.guest.samples.every((s) => s > 0)).toBe(true);
        expect(Number.isFinite(w.ratio.median) && w.ratio.median > 0).toBe(true);
        expect(w.ratio.ciLow).toBeLessThanOrEqual(w.ratio.median);
        expect(w.ratio.ciHigh).toBeGreaterThanOrEqual(w.ratio.median);
      }
      // The guest's vCPU clock was read from the host: the loop is on time on a host CPU (steal
      // taken out), its raw in-guest CPU time kept beside; the function ran several rounds per
      // exec (a node start per exec is costly), yet ten fixed rounds still spread over at least
      // BATCHES execs, so every batch of the CI holds an exec of its own: three rounds each.
      expect(run.method).toMatchObject({ commandCpu: true, guestCpuClock: true });
      const shLoop = run.workloads.find((w) => w.name === 'sh loop')!;
      expect(shLoop.basis).toBe('host-cpu');
      expect(shLoop.sampling!.guestSteal).toBeGreaterThanOrEqual(0);
      expect(shLoop.guest.cpu!.samples).toHaveLength(10);
      shLoop.guest.samples.forEach((net, i) => expect(net).toBeLessThanOrEqual(shLoop.guest.cpu!.samples[i]! + 1e-9));
      const fn = run.workloads.find((w) => w.name === 'json round trip')!;
      expect(fn.sampling!.roundsPerExec).toBe(Math.floor(10 / BATCHES));
      expect(fn.sampling!.blocks).toBeLessThan(10);
      expect(fn.sampling!.blockIds).toHaveLength(10);
      expect(first.table).toMatch(/^json round trip\s/m);
      console.log(first.table); // the figures, for the CI log

      // The same guest now loops 10× as long: its guest/host ratio rises far past noise.
      const second = await runBenchSuite('linux-test', vm, facts, loop(20000), { ...options, warmup: 0, failOnRegression: 25 }).catch((e: unknown) => e);
      expect(isMacvmError(second, 'MACVM_BENCH_REGRESSION')).toBe(true);

      const lines = readFileSync(benchPaths(reports).history, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as BenchRun);
      expect(lines).toHaveLength(2);
      const verdict = lines[1]!.workloads.find((w) => w.name === 'sh loop')!.baseline!;
      expect(verdict.verdict).toBe('slower');
      expect(verdict.change).toBeGreaterThan(0.25);
      console.log(`sh loop with 10× the guest work: ${verdict.verdict} ${(verdict.change * 100).toFixed(0)} % (p=${verdict.pValue.toPrecision(2)})`);
    } finally {
      await vm.dispose();
    }
  }, 900_000);
});
