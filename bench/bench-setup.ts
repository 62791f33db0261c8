/**
 * What a bench suite with a JS function workload costs beyond its workloads, on the qemu
 * linux-test guest: the example suite (specs/guest-vs-host.spec.ts: a shell loop and a
 * sha256 under this host's node, 6 rounds), run side by side in one process
 *   upload  cloned from linux-test itself: node (~100 MB with its libraries) is uploaded
 *   layer   cloned from the cached disk layer that already holds node (imageWithNode)
 * Each suite: boot → the suite → dispose, then the same workloads once more in the same VM
 * (node is there by then), which is the suite's workload time. Nothing is asserted.
 * Needs the image: `macvm image build linux-test`.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBenchSuite } from '../src/bench/bench-suite.js';
import type { BenchBuilder } from '../src/bench/workloads.js';
import { imageWithNode } from '../src/fixtures/node-layer.js';
import { homePaths } from '../src/vm/home.js';
import { startMacVM } from '../src/machine/start.js';

declare const require: (id: string) => typeof import('node:crypto');

const IMAGE = 'linux-test';

/** The example spec's workloads, as specs/guest-vs-host.spec.ts defines them. */
function exampleSuite(b: BenchBuilder): void {
  b.command('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done', { name: 'shell loop' });
  b.fn('sha256 of 64 KiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(64 * 1024, 7)).digest('hex'));
}

interface Phases {
  boot: number;
  suite: number;
  dispose: number;
  workloads: number;
  guestNode: string;
}

async function oneSuite(image: string, reportsDir: string): Promise<Phases> {
  const options = { reportsDir, rounds: 6, warmup: 1, baseline: false as const, log: () => {} };
  const t0 = performance.now();
  const vm = await startMacVM({ image, provider: 'qemu', cpus: 1, memory: 512 });
  const t1 = performance.now();
  let t2 = t1;
  let t3 = t1;
  let guestNode = '';
  try {
    const facts = { provider: vm.facts.provider, image: vm.facts.image, guestOs: 'linux', cpus: vm.facts.cpus, memoryMiB: vm.facts.memoryMiB };
    const first = await runBenchSuite('guest vs host', vm, facts, exampleSuite, options);
    t2 = performance.now();
    guestNode = String(first.run.method?.guestNode);
    await runBenchSuite('guest vs host', vm, facts, exampleSuite, options);
    t3 = performance.now();
  } finally {
    await vm.dispose();
  }
  const t4 = performance.now();
  return { boot: t1 - t0, suite: t2 - t1, dispose: t4 - t3, workloads: t3 - t2, guestNode };
}

export async function run(): Promise<void> {
  if (!existsSync(join(homePaths().image(IMAGE), 'image.json'))) {
    console.log(`skipped: no ${IMAGE} image (macvm image build ${IMAGE})`);
    return;
  }
  const reportsDir = await mkdtemp(join(tmpdir(), 'macvm-bench-setup-'));
  try {
    const start = performance.now();
    const layer = await imageWithNode('qemu', IMAGE);
    console.log(`disk layer with node: ${layer} — ready in ${((performance.now() - start) / 1000).toFixed(2)} s (built on first use, then found)`);
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(`${'node in the guest'.padEnd(22)}${'boot'.padStart(8)}${'suite'.padStart(9)}${'dispose'.padStart(9)}${'total'.padStart(9)}${'workloads'.padStart(11)}   total / workloads`);
    for (const [label, image] of [['uploaded per suite', IMAGE], ['from the disk layer', layer]] as const) {
      const p = await oneSuite(image, reportsDir);
      const total = p.boot + p.suite + p.dispose;
      console.log(`${label.padEnd(22)}${s(p.boot).padStart(8)}${s(p.suite).padStart(9)}${s(p.dispose).padStart(9)}${s(total).padStart(9)}${s(p.workloads).padStart(11)}   ${(total / p.workloads).toFixed(2)}× (${p.guestNode})`);
    }
  } finally {
    await rm(reportsDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
