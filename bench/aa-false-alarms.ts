/**
 * False alarms measured, not simulated: A/A comparisons between REAL bench runs. Each pair is
 * two runs of the same workload against the same guest with the same settings, back to back;
 * the second is judged against the first by the gate the project uses (withBaseline →
 * compareWithBaseline: Welch's t test on each run's three batch ratios, α = 0.05), as
 * runBenchSuite does. Any significant verdict is a false alarm, so the observed rate should
 * be near the nominal 5 % (two-sided) — printed with its 95 % Wilson interval. Pairs are
 * disjoint (runs 2i, 2i+1), so the trials are independent as the binomial interval assumes.
 *
 *   npm run bench aa-false-alarms                       # ssh to this host through a real sshd
 *   npm run bench aa-false-alarms -- --guest qemu       # the qemu linux-test guest (TCG here)
 *   ... --pairs 40 --rounds 10 --warmup auto
 *   ... --rounds auto --max-time 15000      # adaptive rounds, as benchMacVM runs them, with a shorter budget
 *   ... --per-exec 1 --no-cpu-clock       # one round per exec, the guest's own CPU time (as before)
 *   ... --out pairs.json                  # every pair's samples and the load around it
 *
 * Real runs are not the i.i.d. samples the test assumes: load from other tenants drifts
 * between runs, and a drift that does not cancel in the guest/host ratio shows up here as a
 * higher rate — which is exactly what this bench is for.
 */
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { regressions } from '../src/bench/compare.js';
import { withBaseline } from '../src/bench/history.js';
import { runBench } from '../src/bench/run-bench.js';
import type { BenchShell } from '../src/bench/shell.js';
import { wilsonInterval } from '../src/bench/stats.js';
import { collectWorkloads } from '../src/bench/workloads.js';
import { connectGuest } from '../src/guest/session.js';
import type { BenchRun } from '../src/shared/bench-records.js';
import { startMacVM } from '../src/machine/start.js';
import { startSshd } from '../test/support/sshd.js';

interface Guest {
  shell: BenchShell;
  label: string;
  close(): Promise<void>;
}

async function sshGuest(): Promise<Guest> {
  const sshd = await startSshd();
  const session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
  return {
    shell: session,
    label: 'ssh to this host (real sshd on 127.0.0.1)',
    close: async () => {
      await session.close();
      await sshd.stop();
    },
  };
}

async function qemuGuest(): Promise<Guest> {
  const vm = await startMacVM({ image: 'linux-test', provider: 'qemu', cpus: 1, memory: 512 });
  return { shell: vm, label: 'qemu linux-test (1 vCPU, 512 MiB)', close: () => vm.dispose() };
}

export async function run(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      guest: { type: 'string', default: 'ssh' },
      pairs: { type: 'string', default: '40' },
      rounds: { type: 'string', default: '10' },
      'max-time': { type: 'string', default: '15000' },
      warmup: { type: 'string', default: 'auto' },
      loops: { type: 'string', default: '3000' },
      'per-exec': { type: 'string' },
      'no-cpu-clock': { type: 'boolean', default: false },
      out: { type: 'string' },
    },
    strict: false,
  });
  const pairs = Number(values.pairs);
  const rounds = values.rounds === 'auto' ? 'auto' : Number(values.rounds);
  const maxTime = Number(values['max-time']);
  const warmup = values.warmup === 'auto' ? 'auto' : Number(values.warmup);
  const guest = values.guest === 'qemu' ? await qemuGuest() : await sshGuest();
  const workloads = collectWorkloads((b) => b.command('i=0; while [ $i -lt $N ]; do i=$((i+1)); done', { name: 'sh loop', env: { N: String(values.loops) } }));
  const environment = { hostModel: '', hostOs: '', provider: String(values.guest), image: 'aa', cpus: 1, memoryMiB: 0 };
  console.log(`A/A: ${pairs} pairs of runs of \`sh loop\` (${values.loops} iterations), ${rounds === 'auto' ? `auto rounds (±2 %, ${maxTime / 1000} s budget)` : `${rounds} rounds`}, warm-up ${warmup}, against ${guest.label}`);

  const verdicts: Record<'ratio' | 'guest', { twoSided: number; gate: number }> = { ratio: { twoSided: 0, gate: 0 }, guest: { twoSided: 0, gate: 0 } };
  const changes: number[] = [];
  const pairsOut: unknown[] = [];
  let basis = '';
  const started = performance.now();
  try {
    for (let pair = 0; pair < pairs; pair++) {
      const one = (): Promise<BenchRun> =>
        runBench({
          suite: 'aa',
          workloads,
          guest: guest.shell,
          rounds,
          warmup,
          maxTime,
          environment,
          ...(values['per-exec'] ? { maxRoundsPerExec: Number(values['per-exec']) } : {}),
          ...(values['no-cpu-clock'] ? { useCpuClock: false } : {}),
        });
      const loadA = loadavg()[0]!;
      const a = await one();
      const b = await one();
      pairsOut.push({ a: a.workloads[0], b: b.workloads[0], loadA, loadB: loadavg()[0]! });
      basis = a.workloads[0]!.basis ?? 'wall';
      for (const metric of ['ratio', 'guest'] as const) {
        const judged = withBaseline(b, { run: a, against: 'A' }, metric);
        const w = judged.workloads[0]!;
        if (w.baseline!.verdict === 'slower' || w.baseline!.verdict === 'faster') verdicts[metric].twoSided++;
        // The regression gate at 0 %: significantly slower at all.
        if (regressions(judged.workloads, 0).length > 0) verdicts[metric].gate++;
        if (metric === 'ratio') changes.push(w.baseline!.change);
      }
      if ((pair + 1) % 10 === 0) console.log(`  ${pair + 1}/${pairs} pairs, ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
  } finally {
    await guest.close();
    // The raw pairs, for looking at what made an alarm (--out file.json).
    if (values.out) await writeFile(String(values.out), JSON.stringify(pairsOut));
  }
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  const line = (label: string, k: number, expected: number) => {
    const ci = wilsonInterval(k, pairs);
    return `  ${label.padEnd(52)} ${String(k).padStart(2)}/${pairs} = ${pct(k / pairs).padStart(6)} (95 % CI ${pct(ci.low)}–${pct(ci.high)}), expected ${pct(expected)}`;
  };
  console.log(`samples on ${basis} time; ${((performance.now() - started) / 1000).toFixed(0)} s for ${2 * pairs} runs`);
  console.log(line('ratio metric (default): significant either way', verdicts.ratio.twoSided, 0.05));
  console.log(line('ratio metric: regression gate fires (slower, p<0.05)', verdicts.ratio.gate, 0.025));
  console.log(line('guest metric: significant either way', verdicts.guest.twoSided, 0.05));
  const sorted = [...changes].sort((x, y) => x - y);
  console.log(`  A/A change of the ratio's median, run B vs run A: median ${pct(sorted[sorted.length >> 1]!)}, 5–95 % ${pct(sorted[Math.floor(pairs * 0.05)]!)} … ${pct(sorted[Math.floor(pairs * 0.95)]!)}`);
}
