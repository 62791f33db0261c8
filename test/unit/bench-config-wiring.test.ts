/**
 * The config's `bench` and `reports` sections reach the code that uses them: benchMacVM under
 * the runner (history file, regression gate, reports dir) and `macvm report` / `macvm bench`
 * (which read what `macvm test` wrote). Before, `bench.history` and `bench.failOnRegression`
 * were validated and then ignored, and both verbs looked in ./reports whatever the config said.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { benchPaths, recordRun } from '../../src/bench/history.js';
import { suiteBenchOptions } from '../../src/fixtures/bench-macvm.js';
import { generateReport } from '../../src/report/generate.js';
import { reportLocations } from '../../src/runner/report-locations.js';
import { benchCommand } from '../../src/runner/commands/bench.js';
import type { BenchRun } from '../../src/shared/bench-records.js';
import { benchRun } from '../fixtures/report/build-reports-dir.js';

const configModule = resolve('src/runner/config.ts');
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function project(config: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-config-'));
  dirs.push(dir);
  await writeFile(join(dir, 'macvm.config.ts'), `import { defineConfig } from ${JSON.stringify(configModule)};\nexport default defineConfig(${config});\n`);
  return dir;
}

function run(suite: string, guest: number[]): BenchRun {
  return {
    schema: 1,
    runId: `${suite}-${Math.random().toString(36).slice(2)}`,
    suite,
    at: new Date().toISOString(),
    environment: { hostModel: 'x', hostOs: 'linux', provider: 'qemu', image: 'linux-test', cpus: 1, memoryMiB: 512 },
    workloads: [{ name: 'w', kind: 'command', unit: 'ms', basis: 'cpu', host: { samples: guest.map(() => 10) }, guest: { samples: guest }, ratio: { median: guest[0]! / 10, ciLow: 1, ciHigh: 1 } }],
  } as unknown as BenchRun;
}

describe('benchMacVM under the runner', () => {
  const context = { reportsDir: '/run/reports', bench: { history: '/repo/perf/history.jsonl', failOnRegression: 10 } };

  it('takes the reports dir, the history file and the gate from the run when the spec leaves them out', () => {
    expect(suiteBenchOptions({ rounds: 5 }, context, {})).toEqual({ rounds: 5, reportsDir: '/run/reports', historyFile: '/repo/perf/history.jsonl', failOnRegression: 10 });
  });

  it('lets `macvm bench --fail-on-regression` beat the config, and the spec beat both', () => {
    expect(suiteBenchOptions({}, context, { MACVM_BENCH_FAIL_ON_REGRESSION: '3' }).failOnRegression).toBe(3);
    expect(suiteBenchOptions({ failOnRegression: 1, reportsDir: 'mine', historyFile: 'h.jsonl' }, context, { MACVM_BENCH_FAIL_ON_REGRESSION: '3' })).toMatchObject({ failOnRegression: 1, reportsDir: 'mine', historyFile: 'h.jsonl' });
  });

  it('sets no gate when nothing asks for one', () => {
    expect('failOnRegression' in suiteBenchOptions({}, { reportsDir: '/r', bench: { history: '/r/bench/history.jsonl' } }, {})).toBe(false);
  });
});

describe('the bench history where the config puts it', () => {
  it('recordRun appends to the named history file and keeps latest.json under the reports dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-history-'));
    dirs.push(dir);
    const history = join(dir, 'tracked', 'perf', 'history.jsonl');
    await recordRun(run('s', [20, 21]), join(dir, 'reports'), history);
    expect((await readFile(history, 'utf8')).trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(await readFile(benchPaths(join(dir, 'reports')).latest, 'utf8')).suite).toBe('s');
    await expect(stat(join(dir, 'reports', 'bench', 'history.jsonl'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the report reads it from there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'macvm-bench-report-'));
    dirs.push(dir);
    const history = join(dir, 'perf.jsonl');
    for (const index of [0, 1, 2]) await recordRun(benchRun(index), join(dir, 'reports'), history);
    const withHistory = await readFile((await generateReport({ reportsDir: join(dir, 'reports'), benchHistory: history, junit: false })).html, 'utf8');
    // The first run's point (its date) is in the history only; latest.json holds the third.
    expect(withHistory).toContain(benchRun(0).at);
    const latestOnly = await readFile((await generateReport({ reportsDir: join(dir, 'reports'), junit: false })).html, 'utf8');
    expect(latestOnly).not.toContain(benchRun(0).at);
    expect(latestOnly).toContain(benchRun(2).at);
  });
});

describe('reportLocations (macvm report, macvm bench)', () => {
  it('reads reports.dir and the bench section from macvm.config.ts; MACVM_REPORTS_DIR beats the config and --reports-dir beats both', async () => {
    const cwd = await project(`{ reports: { dir: 'out' }, bench: { failOnRegression: 7 } }`);
    expect(await reportLocations(undefined, {}, cwd)).toEqual({ reportsDir: join(cwd, 'out'), benchHistory: join(cwd, 'out', 'bench', 'history.jsonl'), failOnRegression: 7 });
    expect((await reportLocations(undefined, { MACVM_REPORTS_DIR: '/ci/r' }, cwd)).reportsDir).toBe('/ci/r');
    expect(await reportLocations('/flag/r', { MACVM_REPORTS_DIR: '/ci/r' }, cwd)).toMatchObject({ reportsDir: '/flag/r', benchHistory: '/flag/r/bench/history.jsonl' });
  });

  it('keeps a history file the config names, whatever the reports dir', async () => {
    const cwd = await project(`{ bench: { history: 'perf/history.jsonl' } }`);
    expect((await reportLocations('/flag/r', {}, cwd)).benchHistory).toBe(join(cwd, 'perf', 'history.jsonl'));
  });

  it('macvm bench (compare) gates on the config\'s bench.failOnRegression when no flag is given', async () => {
    const cwd = await project(`{ bench: { failOnRegression: 5 } }`);
    const reports = join(cwd, 'reports');
    await mkdir(reports, { recursive: true });
    await recordRun(run('gate', [20, 20, 20, 20, 20, 20, 20, 20, 20]), reports);
    await recordRun(run('gate', [40, 40, 40, 40, 40, 40, 40, 40, 40]), reports);
    const previous = process.cwd();
    const out = new PassThrough();
    const err = new PassThrough();
    process.chdir(cwd);
    try {
      await expect(benchCommand.run({ argv: [], stdout: out, stderr: err })).rejects.toMatchObject({ code: 'MACVM_BENCH_REGRESSION' });
      // A flag wins over the config: 200 % is more than this run's change.
      expect(await benchCommand.run({ argv: ['--fail-on-regression', '200'], stdout: out, stderr: err })).toBe(0);
    } finally {
      process.chdir(previous);
    }
  });
});
