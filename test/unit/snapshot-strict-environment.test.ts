import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import '../../src/fixtures/image-snapshot.js';
import { isMacvmError, MacvmError } from '../../src/errors.js';
import { parseRunResult } from '../../src/report/read-results.js';
import { resolveConfig, type HostFacts } from '../../src/runner/config.js';
import type { Artifact } from '../../src/shared/results.js';
import { setSnapshotEnvironment, type SnapshotEnvironment } from '../../src/snapshot/environment.js';
import { encodePng } from '../../src/snapshot/png.js';
import { configureImageSnapshots, setReportsDir } from '../../src/snapshot/settings.js';
import { syntheticPage } from '../fixtures/snapshot/synthetic-page.js';
import { useSnapshotSandbox } from '../support/snapshot-sandbox.js';

// "Pixels decide; the environment explains": the config's snapshots.strictEnvironment, on its
// way from macvm.config.ts through the matcher's defaults, and the note that reaches the report.

const host: HostFacts = { platform: 'linux', arch: 'x64', cpus: 8, totalMemoryBytes: 24 * 2 ** 30 };
const resolveRaw = (raw: unknown) => resolveConfig(raw, { root: '/project', env: {}, host });

const KERNEL_56: SnapshotEnvironment = { provider: 'qemu', guestOs: 'linux', guestBuild: '6.1.0-56-cloud-amd64', gpu: 'qemu VGA (std)' };
const KERNEL_57: SnapshotEnvironment = { ...KERNEL_56, guestBuild: '6.1.0-57-cloud-amd64' };
const page = encodePng(syntheticPage({ width: 160, height: 100, seed: 3 }));

describe('snapshots.strictEnvironment in the config', () => {
  it('is accepted as a boolean and defaults to false', () => {
    expect(resolveRaw({ snapshots: { strictEnvironment: true } }).snapshots.strictEnvironment).toBe(true);
    expect(resolveRaw({ snapshots: { strictEnvironment: false } }).snapshots.strictEnvironment).toBe(false);
    expect(resolveRaw({}).snapshots.strictEnvironment).toBe(false);
  });

  it.each([['yes'], [1], ['strict']])('rejects %j', (value) => {
    let error: unknown;
    try {
      resolveRaw({ snapshots: { strictEnvironment: value } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MacvmError);
    expect((error as MacvmError).code).toBe('MACVM_CONFIG_INVALID');
    expect((error as MacvmError).message).toContain(`snapshots.strictEnvironment must be true or false, got ${JSON.stringify(value)}`);
  });
});

describe('toMatchImageSnapshot across environments', () => {
  const sandbox = useSnapshotSandbox(KERNEL_56);

  it('passes matching pixels from another kernel build and hands the note to the report', async ({ task }) => {
    await expect(page).toMatchImageSnapshot({ name: 'explained', pathTemplate: sandbox.pathTemplate });
    await expect(page).toMatchImageSnapshot({ name: 'explained', pathTemplate: sandbox.pathTemplate, environment: KERNEL_57 });
    const artifacts = (task.meta as { macvmArtifacts?: Artifact[] }).macvmArtifacts ?? [];
    const explained = artifacts.find((a) => a.snapshot?.environmentNote);
    expect(explained?.snapshot?.environmentNote).toBe('baseline from linux (6.1.0-56-cloud-amd64) / qemu VGA (std) / qemu, pixels match (differs in guestBuild)');
  });

  it('refuses to compare when the config default (configureImageSnapshots) says strictEnvironment', async () => {
    await expect(page).toMatchImageSnapshot({ name: 'strict', pathTemplate: sandbox.pathTemplate });
    configureImageSnapshots({ strictEnvironment: true });
    let error: unknown;
    try {
      await expect(page).toMatchImageSnapshot({ name: 'strict', pathTemplate: sandbox.pathTemplate, environment: KERNEL_57 });
    } catch (caught) {
      error = caught;
    }
    expect(isMacvmError(error, 'MACVM_SNAPSHOT_ENV_MISMATCH')).toBe(true);
    // The option overrides the config default, per snapshot.
    await expect(page).toMatchImageSnapshot({ name: 'strict', pathTemplate: sandbox.pathTemplate, environment: KERNEL_57, strictEnvironment: false });
  });
});

describe('results.json', () => {
  const withSnapshot = (snapshot: Record<string, unknown>) => ({
    suites: [{ name: 's', tests: [{ name: 't', status: 'passed', artifacts: [{ kind: 'snapshot', name: 'console', snapshot: { actual: 'a.png', ...snapshot } }] }] }],
  });

  it('keeps the environment note of a snapshot artifact', () => {
    const run = parseRunResult(withSnapshot({ environmentNote: 'baseline from linux (6.1.0-56), pixels match (differs in guestBuild)' }));
    expect(run.suites[0]!.tests[0]!.artifacts[0]!.snapshot!.environmentNote).toBe('baseline from linux (6.1.0-56), pixels match (differs in guestBuild)');
  });

  it('rejects a note that is not a string, naming its JSON path', () => {
    expect(() => parseRunResult(withSnapshot({ environmentNote: 42 }), 'r.json')).toThrow('$.suites[0].tests[0].artifacts[0].snapshot.environmentNote');
  });
});

describe('baselines this run wrote', () => {
  it('a written or -u updated baseline is named in the artifact, relative to the project root', async ({ task }) => {
    const dir = await mkdtemp(join(tmpdir(), 'macvm-written-'));
    const previous = process.cwd();
    process.chdir(dir);
    setReportsDir(join(dir, 'reports'));
    setSnapshotEnvironment(KERNEL_56);
    vi.stubEnv('CI', '');
    try {
      const pathTemplate = join(dir, 'shots', '{name}.png');
      await expect(page).toMatchImageSnapshot({ name: 'fresh', pathTemplate, update: 'missing' });
      await expect(page).toMatchImageSnapshot({ name: 'fresh', pathTemplate, update: 'all' });
      const written = ((task.meta as { macvmArtifacts?: Artifact[] }).macvmArtifacts ?? []).map((a) => a.snapshot?.baseline);
      expect(written).toEqual([
        { status: 'written', path: 'shots/fresh.png' },
        { status: 'updated', path: 'shots/fresh.png' },
      ]);
    } finally {
      process.chdir(previous);
      setReportsDir(undefined);
      setSnapshotEnvironment(undefined);
      vi.unstubAllEnvs();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
