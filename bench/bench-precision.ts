/**
 * Issue #14 item 1, side by side in one VM: the example spec's two workloads
 * (specs/guest-vs-host.spec.ts) against the qemu linux-test guest, measured three ways in
 * one VM: issue #14's (6 rounds after 1 warm-up round), adaptive rounds as first built (auto
 * rounds and warm-up, ±2 % target, 60 s budget per workload; one round per exec, the guest's
 * own CPU time), and now (the same, plus several rounds per exec and the guest's steal taken
 * out with the host's vCPU clock). Prints the ratio's 95 % CI half-width (batch means, as runs
 * report it, and what a per-round bootstrap would claim from the same samples), rounds, time
 * and what ended each run. Target: ≤ ±2 % on both within 60 s. Figures only; nothing is asserted.
 *
 *   npm run bench bench-precision            # -- --max-time 60000 --precision 0.02
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ratioOfMedians } from '../src/bench/ratio.js';
import { neededForPrecision } from '../src/bench/batch-means.js';
import { runBench } from '../src/bench/run-bench.js';
import { collectWorkloads } from '../src/bench/workloads.js';
import type { WorkloadResult } from '../src/shared/bench-records.js';
import { imageWithNode } from '../src/fixtures/node-layer.js';
import { startMacVM } from '../src/machine/start.js';

declare const require: (id: string) => typeof import('node:crypto');

export async function run(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { 'max-time': { type: 'string', default: '60000' }, precision: { type: 'string', default: '0.02' } }, strict: false });
  const workloads = collectWorkloads((b) => {
    b.command('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done', { name: 'shell loop' });
    b.fn('sha256 of 64 KiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(64 * 1024, 7)).digest('hex'));
  });
  // As benchMacVM does: the image with this host's node in a cached layer, so nothing is uploaded.
  const vm = await startMacVM({ image: await imageWithNode('qemu', 'linux-test'), provider: 'qemu', cpus: 1, memory: '512MiB' });
  const environment = { hostModel: '', hostOs: '', provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 512 };
  try {
    const auto = { precision: Number(values.precision), maxTime: Number(values['max-time']) };
    const target = `±${auto.precision * 100} %, ${auto.maxTime / 1000} s`;
    const methods = [
      { label: 'issue #14: 6 rounds, 1 warm-up', options: { rounds: 6, warmup: 1, maxRoundsPerExec: 1, useCpuClock: false } },
      { label: `before: auto, ${target}`, options: { ...auto, maxRoundsPerExec: 1, useCpuClock: false } },
      { label: `now: auto, ${target}`, options: auto },
    ] as const;
    const rows: string[] = [];
    const loadBefore = loadavg()[0]!;
    for (const method of methods) {
      const started = performance.now();
      const run = await runBench({ suite: 'bench-precision', workloads, guest: vm, environment, ...method.options });
      const total = (performance.now() - started) / 1000;
      for (const w of run.workloads) rows.push(describe(method.label, w, Number(values.precision)));
      rows.push(`  ${method.label}: both workloads ${total.toFixed(1)} s`);
    }
    rows.push(`  host load (1 min): ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`);
    console.log(rows.join('\n'));
  } finally {
    await vm.dispose();
  }
}

function describe(label: string, w: WorkloadResult, precision: number): string {
  const s = w.sampling!;
  const halfWidth = (w.ratio.ciHigh - w.ratio.ciLow) / 2 / w.ratio.median;
  const clock = w.basis === 'host-cpu' ? `host-CPU time (guest steal ${((s.guestSteal ?? 0) * 100).toFixed(0)} % taken out)` : `${w.basis} time`;
  const execs = s.roundsPerExec && s.roundsPerExec > 1 ? ` in ${s.blocks} execs (≤ ${s.roundsPerExec} rounds each)` : '';
  // What a per-round bootstrap (the CI before batch means) would claim from the same samples.
  const perRound = ratioOfMedians(w.host.samples, w.guest.samples);
  const perRoundWidth = (perRound.ciHigh - perRound.ciLow) / 2 / perRound.median;
  // The budget the asked precision would take at this run's noise (what the table's warning says).
  const needed = s.endedBy === 'maxTime' ? neededForPrecision(s.elapsedMs, halfWidth, precision) : undefined;
  const budget = needed === undefined ? '' : ` (±${precision * 100} % would take ≈ ${(needed / 60_000).toFixed(0)} min)`;
  return `  ${label.padEnd(30)} ${w.name.padEnd(17)} ${w.ratio.median.toFixed(2)}× (${w.ratio.ciLow.toFixed(2)}–${w.ratio.ciHigh.toFixed(2)}) ±${(halfWidth * 100).toFixed(1)} % [per-round bootstrap: ±${(perRoundWidth * 100).toFixed(1)} %] on ${clock} · ${s.rounds} rounds${execs} + ${s.warmupRounds} warm-up (${s.warmupEndedBy}) · ${(s.elapsedMs / 1000).toFixed(1)} s · ended by ${s.endedBy}${budget}`;
}
