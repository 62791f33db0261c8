/**
 * Issue #14 item 1, side by side in one VM: the example spec's two workloads
 * (specs/guest-vs-host.spec.ts) against the qemu linux-test guest, measured the old way
 * (6 rounds after 1 warm-up round) and the new way (rounds and warm-up 'auto', ±2 % target,
 * 60 s budget per workload). Prints the ratio's 95 % CI half-width, rounds, time and what
 * ended each run. Target: ≤ ±2 % on both within 60 s. Figures only; nothing is asserted.
 *
 *   npm run bench bench-precision            # -- --max-time 60000 --precision 0.02
 */
import { parseArgs } from 'node:util';
import { runBench } from '../src/bench/run-bench.js';
import { collectWorkloads } from '../src/bench/workloads.js';
import type { WorkloadResult } from '../src/shared/bench-records.js';
import { startMacVM } from '../src/machine/start.js';

declare const require: (id: string) => typeof import('node:crypto');

export async function run(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { 'max-time': { type: 'string', default: '60000' }, precision: { type: 'string', default: '0.02' } }, strict: false });
  const workloads = collectWorkloads((b) => {
    b.command('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done', { name: 'shell loop' });
    b.fn('sha256 of 64 KiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(64 * 1024, 7)).digest('hex'));
  });
  const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: '512MiB' });
  const environment = { hostModel: '', hostOs: '', provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 512 };
  try {
    const methods = [
      { label: 'old: 6 rounds, 1 warm-up', options: { rounds: 6, warmup: 1 } },
      { label: `new: auto, ±${Number(values.precision) * 100} %, ${Number(values['max-time']) / 1000} s`, options: { precision: Number(values.precision), maxTime: Number(values['max-time']) } },
    ] as const;
    const rows: string[] = [];
    for (const method of methods) {
      const started = performance.now();
      const run = await runBench({ suite: 'bench-precision', workloads, guest: vm, environment, ...method.options });
      const total = (performance.now() - started) / 1000;
      for (const w of run.workloads) rows.push(describe(method.label, w));
      rows.push(`  ${method.label}: both workloads ${total.toFixed(1)} s`);
    }
    console.log(rows.join('\n'));
  } finally {
    await vm.dispose();
  }
}

function describe(label: string, w: WorkloadResult): string {
  const s = w.sampling!;
  const halfWidth = (w.ratio.ciHigh - w.ratio.ciLow) / 2 / w.ratio.median;
  return `  ${label.padEnd(30)} ${w.name.padEnd(17)} ${w.ratio.median.toFixed(2)}× (${w.ratio.ciLow.toFixed(2)}–${w.ratio.ciHigh.toFixed(2)}) ±${(halfWidth * 100).toFixed(1)} % on ${w.basis} time · ${s.rounds} rounds + ${s.warmupRounds} warm-up (${s.warmupEndedBy}) · ${(s.elapsedMs / 1000).toFixed(1)} s · ended by ${s.endedBy}`;
}
