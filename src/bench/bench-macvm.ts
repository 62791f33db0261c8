import { describe, test } from 'vitest';
import { startMacVM, type StartMacVMOptions } from '../vm/start.js';
import { runBenchSuite, type BenchSuiteOptions } from './bench-suite.js';
import type { BenchBuilder } from './workloads.js';

/**
 * benchMacVM: a guest-vs-host benchmark as a vitest suite.
 *
 *   benchMacVM('build', { image: 'sonoma-xcode', cpus: 4, memory: '8GiB', rounds: 10 }, (b) => {
 *     b.command('swift build -c release', { cwd: '/Users/admin/app' });
 *     b.fn('sha256 1 MiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(1 << 20)).digest());
 *   });
 *
 * One `describe` holding one test that starts a fresh VM, runs every workload on the host
 * and in the guest (interleaved), prints the table, records the run in reports/bench/, and
 * fails with MACVM_BENCH_REGRESSION when `failOnRegression` (or `macvm bench
 * --fail-on-regression`) says so. This is the one bench file that reaches up into src/vm:
 * everything below it works on any BenchShell.
 */
export interface BenchMacVMOptions extends BenchSuiteOptions {
  image: string;
  provider?: StartMacVMOptions['provider'];
  providerSettings?: StartMacVMOptions['providerSettings'];
  cpus?: number;
  memory?: string | number;
  /** Ready deadline for the VM, ms. */
  deadline?: number;
  /** The test's timeout, ms (default 60 min: boot + upload + rounds). */
  timeoutMs?: number;
}

export function benchMacVM(name: string, options: BenchMacVMOptions, define: (b: BenchBuilder) => void): void {
  describe(name, () => {
    test(`guest vs host (${options.image})`, async () => {
      await runBenchInMacVM(name, options, define);
    }, options.timeoutMs ?? 60 * 60_000);
  });
}

/** The same without vitest: start the VM, run the suite, always dispose. */
export async function runBenchInMacVM(name: string, options: BenchMacVMOptions, define: (b: BenchBuilder) => void) {
  const vm = await startMacVM({
    image: options.image,
    provider: options.provider,
    providerSettings: options.providerSettings,
    cpus: options.cpus,
    memory: options.memory,
    deadline: options.deadline,
  });
  try {
    const facts = vm.facts;
    const guestOs = [facts.os, facts.arch, facts.imageFacts.os ?? facts.imageFacts.kernel].filter(Boolean).join(' ');
    return await runBenchSuite(name, vm, { provider: facts.provider, image: facts.image, guestOs, cpus: facts.cpus, memoryMiB: facts.memoryMiB }, define, options);
  } finally {
    await vm.dispose();
  }
}
