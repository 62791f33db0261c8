/**
 * Is the guest slower than the host, and did that change since the last run? Each
 * workload runs on both, interleaved; the table gives the guest/host ratio with a 95 % CI
 * and a verdict against the previous run (reports/bench/history.jsonl). Rounds are 'auto':
 * warm-up until the samples stop trending, then rounds until the ratio is known to ±2 %
 * (`precision: 0.02`) or a workload's 60 s budget (`maxTime`) is spent.
 */
import { benchMacVM } from 'macvm';

declare const require: (id: string) => typeof import('node:crypto');

benchMacVM('guest vs host', { image: 'linux-test', cpus: 1, memory: '512MiB', precision: 0.02, maxTime: 60_000 }, (b) => {
  b.command('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done', { name: 'shell loop' });
  // Sent to both sides as source text: self-contained, node built-ins through require.
  b.fn('sha256 of 64 KiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(64 * 1024, 7)).digest('hex'));
});
