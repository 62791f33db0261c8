import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { benchPaths, readHistory, recordRun, resolveBaseline, withBaseline } from '../../src/bench/history.js';
import { parseLdd } from '../../src/bench/node-runtime.js';
import type { BenchRun, WorkloadResult } from '../../src/shared/bench-records.js';
import { ratioOfMedians } from '../../src/bench/ratio.js';
import { summarize } from '../../src/bench/stats.js';
import { formatBenchTable, formatDuration, formatRatio } from '../../src/bench/table.js';
import { neededForPrecision } from '../../src/bench/batch-means.js';
import { parseTimerOutput } from '../../src/bench/timers.js';
import { collectWorkloads, functionSource } from '../../src/bench/workloads.js';
import { benchCommand } from '../../src/runner/commands/bench.js';
import { isMacvmError } from '../../src/errors.js';

function makeRun(suite: string, guest: number[], extra: Partial<BenchRun> = {}): BenchRun {
  const host = guest.map(() => 10);
  return {
    schema: 1,
    runId: `run-${Math.random().toString(36).slice(2)}`,
    at: new Date().toISOString(),
    suite,
    environment: { hostModel: 'Test CPU', hostOs: 'Linux', provider: 'qemu', image: 'linux-test', cpus: 2, memoryMiB: 512 },
    workloads: [{ name: 'build', kind: 'command', host: summarize(host), guest: summarize(guest), ratio: ratioOfMedians(host, guest) }],
    ...extra,
  };
}

const steady = [20, 20.1, 19.9, 20.2, 19.8, 20.05, 19.95, 20.15];
const slower = steady.map((v) => v * 1.2);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'macvm-bench-history-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('history and latest', () => {
  test('each run appends one line and replaces latest.json; a torn line is skipped, not fatal', async () => {
    const a = makeRun('suite', steady);
    const b = makeRun('suite', slower);
    await recordRun(a, dir);
    await recordRun(b, dir);
    const paths = benchPaths(dir);
    expect(readFileSync(paths.history, 'utf8').trim().split('\n')).toHaveLength(2);
    expect(JSON.parse(readFileSync(paths.latest, 'utf8')).runId).toBe(b.runId);
    writeFileSync(paths.history, `${readFileSync(paths.history, 'utf8')}{"suite": "torn`);
    const warnings: string[] = [];
    expect((await readHistory(paths.history, (m) => warnings.push(m))).map((r) => r.runId)).toEqual([a.runId, b.runId]);
    // A last line without its newline is an append under way: skipped without a word.
    expect(warnings).toEqual([]);
  });

  test('lines that are not runs are skipped but reported, so a history of only garbage does not pass for an empty one', async () => {
    const a = makeRun('suite', steady);
    const history = join(dir, 'history.jsonl');
    writeFileSync(history, `not json at all\n${JSON.stringify(a)}\n{"suite": 3}\n`);
    const warnings: string[] = [];
    expect((await readHistory(history, (m) => warnings.push(m))).map((r) => r.runId)).toEqual([a.runId]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('skipped 2 line(s)');
    expect(warnings[0]).toContain('line 1: not JSON');
    expect(warnings[0]).toContain('line 3: not a benchmark run: "suite" is missing');
    expect(warnings[0]).toContain('1 run(s) read');

    writeFileSync(history, 'garbage\nmore garbage\n');
    warnings.length = 0;
    expect(await readHistory(history, (m) => warnings.push(m))).toEqual([]);
    expect(warnings[0]).toContain('skipped 2 line(s)');
  });

  test('macvm bench says so when the history it compares with holds lines that are not runs', async () => {
    const latest = makeRun('suite', slower);
    await recordRun(latest, dir);
    const paths = benchPaths(dir);
    writeFileSync(paths.history, `garbage\n${readFileSync(paths.history, 'utf8')}`);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d) => (err += String(d)));
    await benchCommand.run({ argv: ['--reports-dir', dir], stdout, stderr } as never);
    expect(err).toContain('skipped 1 line(s) that are not benchmark runs (line 1: not JSON)');
    expect(err).toContain('no earlier run of "suite"');
  });

  test('--compare <history.jsonl>: the newest run of the same suite, never the run itself', async () => {
    const old = makeRun('suite', steady);
    const other = makeRun('other', slower);
    const current = makeRun('suite', slower);
    for (const run of [old, other, current]) await recordRun(run, dir);
    const history = benchPaths(dir).history;
    const found = await resolveBaseline(history, { suite: 'suite', historyFile: history, excludeRunId: current.runId });
    expect(found.run.runId).toBe(old.runId);
    const compared = withBaseline(current, found);
    expect(compared.workloads[0]!.baseline).toMatchObject({ verdict: 'slower' });
    expect(compared.workloads[0]!.baseline!.change).toBeCloseTo(0.2, 6);
  });

  test('--compare <BenchRun file>, and a file that is not a run names the problem', async () => {
    const file = join(dir, 'base.json');
    writeFileSync(file, JSON.stringify(makeRun('suite', steady)));
    expect((await resolveBaseline(file, { suite: 'suite', historyFile: join(dir, 'none.jsonl') })).run.suite).toBe('suite');
    writeFileSync(file, JSON.stringify({ suite: 'x', workloads: [{ name: 'w', host: { samples: ['a'] } }] }));
    await expect(resolveBaseline(file, { suite: 'suite', historyFile: '' })).rejects.toThrow(/workloads\[0\]\.host\.samples/);
  });

  test('--compare <git ref>: the newest run recorded at that commit', async () => {
    const repo = join(dir, 'repo');
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8' }).trim();
    execFileSync('git', ['init', '-q', repo]);
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'one');
    git('tag', 'v1');
    const first = git('rev-parse', '--short', 'HEAD');
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'two');
    const atV1 = makeRun('suite', steady, { gitRef: first });
    await recordRun(atV1, dir);
    await recordRun(makeRun('suite', slower, { gitRef: git('rev-parse', '--short', 'HEAD') }), dir);
    const history = benchPaths(dir).history;
    const found = await resolveBaseline('v1', { suite: 'suite', historyFile: history, cwd: repo });
    expect(found.run.runId).toBe(atV1.runId);
    expect(found.against).toContain(first);
    const missing = await resolveBaseline('no-such-ref', { suite: 'suite', historyFile: history, cwd: repo }).catch((e: unknown) => e);
    expect(isMacvmError(missing, 'MACVM_BAD_ARGUMENT')).toBe(true);
  });
});

describe('terminal table', () => {
  test('ratio: ± for a symmetric interval, the interval itself when skewed', () => {
    expect(formatRatio({ median: 1.43, ciLow: 1.38, ciHigh: 1.49 })).toBe('1.43× ±0.06');
    expect(formatRatio({ median: 2.46, ciLow: 1.1, ciHigh: 7.35 })).toBe('2.46× (1.10–7.35)');
    expect(formatRatio({ median: 3, ciLow: 3, ciHigh: 3 })).toBe('3.00× ±0.00');
  });

  test('units read naturally: µs below 1 ms, ms, s above 1000 ms', () => {
    expect(formatDuration(0.0431)).toBe('43.1 µs');
    expect(formatDuration(2.345)).toBe('2.35 ms');
    expect(formatDuration(123.4)).toBe('123 ms');
    expect(formatDuration(4321)).toBe('4.32 s');
  });

  test('numbers right-aligned, "~" when not significant, a warning when too few rounds', () => {
    const base = makeRun('suite', steady);
    const same = withBaseline(makeRun('suite', [...steady].reverse()), { run: base, against: 'abc1234' });
    const text = formatBenchTable(same);
    const [header, row] = text.split('\n');
    expect(header).toMatch(/^workload\s+host median\s+guest median\s+guest\/host\s+vs baseline$/);
    expect(row).toMatch(/^build\s+10\.0 ms\s+20\.0 ms\s+2\.00× ±0\.\d\d\s+~ \(p=0\.\d{3}\)$/);
    // right-aligned: the host column ends where its header ends
    expect(row!.indexOf('10.0 ms') + '10.0 ms'.length).toBe(header!.indexOf('host median') + 'host median'.length);
    expect(text).not.toContain('warning');

    const few = withBaseline(makeRun('suite', [20, 21, 22]), { run: makeRun('suite', [30, 31, 32]), against: 'x' });
    const fewText = formatBenchTable(few);
    expect(fewText).toContain('? too few samples');
    expect(fewText).toMatch(/warning: build: 3 round\(s\) per side; a 95 % CI of the median needs at least 6/);
    expect(fewText).toMatch(/warning: build: too few rounds to tell a change from noise against x/);
  });

  test('a run the time budget ended says how long a budget the asked precision would take at its noise', () => {
    const run = makeRun('suite', steady, { method: { precision: 0.02, maxTimeMs: 60_000 } as BenchRun['method'] });
    run.workloads[0]!.sampling = { rounds: 63, elapsedMs: 60_000, endedBy: 'maxTime', halfWidth: 0.143, warmupRounds: 2, warmupEndedBy: 'trend' } as NonNullable<WorkloadResult['sampling']>;
    // (14.3 / 2)² × 60 s = 3067 s: 52 min.
    expect(formatBenchTable(run)).toContain('warning: build: the time budget ran out at ±14.3 %, short of the ±2.0 % asked for; raise maxTime (at this run\'s noise, to about 52 min: the interval narrows as 1/√time) or make the workload steadier.');
    expect(neededForPrecision(30_000, 0.04, 0.02)).toBe(120_000);
    expect(neededForPrecision(30_000, Number.NaN, 0.02)).toBeUndefined();
  });
});

describe('macvm bench (compare mode, no VM)', () => {
  async function cli(argv: string[]) {
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = '';
    let stderr = '';
    out.on('data', (c) => (stdout += c));
    err.on('data', (c) => (stderr += c));
    try {
      const code = await benchCommand.run({ argv, stdout: out, stderr: err });
      return { code, stdout, stderr };
    } catch (error) {
      return { code: 1, stdout, stderr, error };
    }
  }

  test('compares latest with the previous run, prints JSON, and --fail-on-regression throws MACVM_BENCH_REGRESSION', async () => {
    await recordRun(makeRun('suite', steady), dir);
    await recordRun(makeRun('suite', slower), dir);
    const json = await cli(['--reports-dir', dir, '--json']);
    expect(json.code).toBe(0);
    const run = JSON.parse(json.stdout) as BenchRun;
    expect(run.workloads[0]!.baseline?.verdict).toBe('slower');

    expect((await cli(['--reports-dir', dir, '--fail-on-regression', '25'])).code).toBe(0);
    const gated = await cli(['--reports-dir', dir, '--fail-on-regression', '10%']);
    expect(isMacvmError(gated.error, 'MACVM_BENCH_REGRESSION')).toBe(true);
    expect(gated.stdout).toMatch(/\+20\.0 % slower/);
  });

  test('no run yet, or a bad flag value, is a coded error that says what to do', async () => {
    const none = await cli(['--reports-dir', dir]);
    expect(isMacvmError(none.error, 'MACVM_BENCH_INVALID')).toBe(true);
    expect(String((none.error as Error).message)).toMatch(/Run a benchmark first/);
    const bad = await cli(['--reports-dir', dir, '--fail-on-regression', 'lots']);
    expect(isMacvmError(bad.error, 'MACVM_BAD_ARGUMENT')).toBe(true);
  });
});

describe('parsers and definitions', () => {
  test("ldd's real output format: libraries by soname and the loader", () => {
    const libs = parseLdd(`\tlinux-vdso.so.1 (0x00007ffc5a1f2000)
\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007eff84fd7000)
\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007eff84c00000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007eff84a1e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007eff84ff3000)`);
    expect(libs.map((l) => l.name)).toEqual(['libdl.so.2', 'libstdc++.so.6', 'libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
    expect(libs.filter((l) => l.isLoader).map((l) => l.path)).toEqual(['/lib64/ld-linux-x86-64.so.2']);
  });

  test('timer marker lines: elapsed ns → ms, exit code; anything else is no measurement', () => {
    expect(parseTimerOutput('noise\nmacvm-bench-ns 1500000 0\n')).toEqual({ ms: 1.5, exitCode: 0 });
    expect(parseTimerOutput('macvm-bench-ns 42 3')).toEqual({ ms: 0.000042, exitCode: 3 });
    expect(parseTimerOutput('1795650782%N')).toBeUndefined();
  });

  test('workload options are checked: a misspelt key is named with a did-you-mean instead of being ignored', () => {
    expect(() => collectWorkloads((b) => b.command('sleep 1', { timeout: 5 } as never))).toThrow(/b\.command\("sleep 1"\) options: timeout is not a known key \(did you mean "timeoutMs"\?\)/);
    expect(() => collectWorkloads((b) => b.fn('f', () => 1, { iteration: 5 } as never))).toThrow(/did you mean "iterations"/);
    expect(() => collectWorkloads((b) => b.command('true', { env: { N: 5 } } as never))).toThrow(/env\.N must be a string/);
    expect(collectWorkloads((b) => b.command('true', { name: 'ok', env: { N: '5' }, guest: { cwd: '/tmp' }, timeoutMs: 10 }))).toHaveLength(1);
  });

  test('workload definitions: duplicate names, empty suites and unsendable functions are refused', () => {
    expect(() => collectWorkloads((b) => { b.command('true'); b.command('true'); })).toThrow(/Two workloads are named "true"/);
    expect(() => collectWorkloads(() => {})).toThrow(/defines no workloads/);
    expect(() => functionSource('bound', (() => 1).bind(null))).toThrow(/no source/);
    const holder = { run() { return 1; } };
    expect(() => functionSource('method', holder.run)).toThrow(/method shorthand/);
    const [w] = collectWorkloads((b) => b.fn('arrow', () => 1 + 1));
    expect(w).toMatchObject({ kind: 'function', source: '() => 1 + 1', timeMs: 500 });
  });
});
