import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runBenchInMacVM } from '../../src/fixtures/bench-macvm.js';
import { benchPaths } from '../../src/bench/history.js';
import type { BenchRun } from '../../src/shared/bench-records.js';
import { runBench } from '../../src/bench/run-bench.js';
import type { BenchShell } from '../../src/bench/shell.js';
import { collectWorkloads } from '../../src/bench/workloads.js';
import { isMacvmError } from '../../src/errors.js';
import { connectGuest } from '../../src/guest/session.js';
import type { GuestSession } from '../../src/guest/types.js';
import { createSshProvider, type SshProviderSettings } from '../../src/vm/ssh/provider.js';
import { sshProviderSettings, startSshd, type Sshd } from '../support/sshd.js';

// The "guest" is this host reached through a REAL OpenSSH sshd: an A/A benchmark (host vs
// ssh-to-host) whose true guest/host ratio is 1. What it checks is the method, not speed:
// commands are timed inside the far side (an SSH round trip would show up as a large ratio
// for a millisecond-long command), samples and history are recorded, comparisons work.
let sshd: Sshd;
let home: string;
let reports: string;
let settings: SshProviderSettings;
const savedHome = process.env.MACVM_HOME;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'macvm-bench-ssh-home-'));
  reports = mkdtempSync(join(tmpdir(), 'macvm-bench-ssh-reports-'));
  process.env.MACVM_HOME = home;
  sshd = await startSshd();
  settings = sshProviderSettings(sshd);
});

afterAll(async () => {
  await sshd?.stop();
  if (savedHome === undefined) delete process.env.MACVM_HOME;
  else process.env.MACVM_HOME = savedHome;
  rmSync(home, { recursive: true, force: true });
  rmSync(reports, { recursive: true, force: true });
});

const quiet = () => {};

describe('guest-vs-host bench over a real sshd (A/A)', () => {
  test('a short command and a JS function: ratio near 1, raw samples, history and latest written, then a regression verdict', async () => {
    const define = (guestLoops: string) => (b: Parameters<Parameters<typeof runBenchInMacVM>[2]>[0]) => {
      // ~a few ms of shell work; on the guest side its size comes from the environment.
      b.command('i=0; while [ $i -lt $N ]; do i=$((i+1)); done', { name: 'sh loop', env: { N: '3000' }, guest: { env: { N: guestLoops } } });
      if (guestLoops === '3000') b.fn('sha256 16 KiB', () => require('node:crypto').createHash('sha256').update(Buffer.alloc(16384)).digest(), { timeMs: 50 });
    };
    const options = { image: 'this-host', provider: createSshProvider(settings), rounds: 6, warmup: 1, reportsDir: reports, log: quiet };

    const first = await runBenchInMacVM('aa', options, define('3000'));
    const run: BenchRun = first.run;
    expect(run.method).toMatchObject({ rounds: 6, warmup: 1, commandTimer: 'perl', guestNode: 'guest-node' });
    expect(run.environment).toMatchObject({ provider: 'ssh', image: 'this-host' });
    expect(run.environment.hostModel).not.toBe('');
    for (const w of run.workloads) {
      expect(w.host.samples).toHaveLength(6);
      expect(w.guest.samples).toHaveLength(6);
      expect(w.ratio.ciLow).toBeLessThanOrEqual(w.ratio.median);
      expect(w.ratio.ciHigh).toBeGreaterThanOrEqual(w.ratio.median);
      // Same machine on both sides: a loose band that an SSH round trip inside the timing
      // window, or host/guest samples swapped for different work, would leave. Compared on
      // each side's fastest round: other load on the host only ever adds time, so the minima
      // stay put where a busy moment can halve or double one side's median.
      const fastestRatio = Math.min(...w.guest.samples) / Math.min(...w.host.samples);
      expect(fastestRatio).toBeGreaterThan(0.33);
      expect(fastestRatio).toBeLessThan(3);
      expect(w.baseline).toBeUndefined(); // nothing to compare with yet
    }
    expect(first.table).toMatch(/^sh loop\s/m);

    // Second run: the guest does 20× the shell work. Against the first run that is a clear,
    // significant slowdown of the guest/host ratio, and a 50 % gate turns it into an error.
    const second = await runBenchInMacVM('aa', { ...options, warmup: 0, failOnRegression: 50 }, define('60000')).catch((e: unknown) => e);
    expect(isMacvmError(second, 'MACVM_BENCH_REGRESSION')).toBe(true);
    expect((second as Error).message).toMatch(/sh loop \d+\.\d % slower/);
    expect((second as Error).message).not.toMatch(/sha256/);

    const paths = benchPaths(reports);
    const lines = readFileSync(paths.history, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as BenchRun);
    expect(lines).toHaveLength(2); // the failing run is on record too
    const latest = JSON.parse(readFileSync(paths.latest, 'utf8')) as BenchRun;
    expect(latest.runId).toBe(lines[1]!.runId);
    const loop = latest.workloads.find((w) => w.name === 'sh loop')!;
    expect(loop.baseline).toMatchObject({ verdict: 'slower' });
    expect(loop.baseline!.against).toMatch(/previous run/);
    expect(loop.baseline!.pValue).toBeLessThan(0.05);
  }, 600_000);

  test("a guest without node gets this host's node uploaded and started through the uploaded loader", async () => {
    const session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
    const nodeDir = mkdtempSync(join(tmpdir(), 'macvm-bench-nodeup-'));
    try {
      // A shell function named node shadows the real one in every command: for this run the
      // far side really has no node, so the upload path (ldd libraries + loader) must work.
      const guest = hidingNode(session);
      expect((await guest.exec('node --version', { reject: false })).exitCode).toBe(127);
      const run = await runBench({
        suite: 'node-upload',
        guest,
        rounds: 2,
        warmup: 0,
        guestNodeDir: nodeDir,
        environment: { hostModel: '', hostOs: '', provider: 'ssh', image: 'no-node', cpus: 1, memoryMiB: 0 },
        workloads: collectWorkloads((b) => b.fn('json round trip', () => JSON.parse(JSON.stringify({ a: [1, 2, 3] })), { timeMs: 100 })),
      });
      expect(run.method?.guestNode).toBe('uploaded-node');
      expect(run.workloads[0]!.guest.samples).toHaveLength(2);
      const uploaded = join(nodeDir, `macvm-node-${process.version}-linux-x64`);
      expect(existsSync(join(uploaded, 'node'))).toBe(true);
      expect(existsSync(join(uploaded, 'lib', 'ld-linux-x86-64.so.2'))).toBe(true);
    } finally {
      await session.close();
      rmSync(nodeDir, { recursive: true, force: true });
    }
  }, 600_000);

  test('a failing command names the side and shows its output', async () => {
    const session = await connectGuest({ host: sshd.host, port: sshd.port, credentials: sshd.credentials });
    try {
      const error = await runBench({
        suite: 'fails',
        guest: session,
        rounds: 1,
        warmup: 0,
        environment: { hostModel: '', hostOs: '', provider: 'ssh', image: 'x', cpus: 1, memoryMiB: 0 },
        workloads: collectWorkloads((b) => b.command('echo "no such thing: $WHO" >&2; exit 3', { name: 'broken', env: { WHO: 'widget' } })),
      }).catch((e: unknown) => e);
      expect(isMacvmError(error, 'MACVM_EXEC_FAILED')).toBe(true);
      expect((error as Error).message).toMatch(/"broken" failed on the host \(exit 3\)/);
      expect((error as Error).message).toMatch(/no such thing: widget/);
    } finally {
      await session.close();
    }
  });
});

function hidingNode(session: GuestSession): BenchShell {
  const prefix = 'node() { echo "sh: node: not found" >&2; return 127; }; ';
  return {
    exec: (command, options) => session.exec(prefix + command, options),
    upload: (local, remote) => session.upload(local, remote),
    writeFile: (path, data, options) => session.writeFile(path, data, options),
  };
}
