import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import '../../src/fixtures/image-snapshot.js';
import { toMatchImageSnapshot } from '../../src/fixtures/image-snapshot.js';
import { isMacvmError } from '../../src/errors.js';
import type { Artifact } from '../../src/shared/results.js';
import { setSnapshotEnvironment } from '../../src/snapshot/environment.js';
import { encodePng } from '../../src/snapshot/png.js';
import { setReportsDir } from '../../src/snapshot/settings.js';
import { syntheticPage } from '../fixtures/snapshot/synthetic-page.js';

const page = encodePng(syntheticPage({ width: 160, height: 100, seed: 9 }));
const changed = encodePng(syntheticPage({ width: 160, height: 100, seed: 9, changes: [{ x: 10, y: 70, width: 8, height: 8 }] }));

let dir: string;
let pathTemplate: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'macvm-matcher-'));
  pathTemplate = join(dir, '{specName}', '{name}.png');
  setReportsDir(join(dir, 'reports'));
  setSnapshotEnvironment({ provider: 'qemu', guestOs: 'linux', guestBuild: '6.1.0-test', gpu: 'qemu VGA (std)' });
});
afterAll(async () => {
  setReportsDir(undefined);
  setSnapshotEnvironment(undefined);
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  // The outer environment (a CI variable, an update override) must not decide these tests.
  vi.stubEnv('CI', '');
  // vitest itself sets its snapshot mode to 'none' when it sees CI, which the matcher honours;
  // pin the local default here so these tests mean the same in CI and on a laptop.
  vi.stubEnv('MACVM_UPDATE_SNAPSHOTS', 'missing');
  return () => vi.unstubAllEnvs();
});

async function failureOf(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the assertion to fail');
}

describe('toMatchImageSnapshot', () => {
  it('is registered on vitest expect and exported for explicit registration', () => {
    expect(typeof toMatchImageSnapshot).toBe('function');
    expect(typeof (expect(page) as unknown as Record<string, unknown>).toMatchImageSnapshot).toBe('function');
  });

  it('names unnamed snapshots after the test, with a counter', async () => {
    await expect(page).toMatchImageSnapshot({ pathTemplate });
    await expect(page.toString('base64')).toMatchImageSnapshot({ pathTemplate });
    const base = join(dir, 'snapshot-matcher.test.ts', 'tomatchimagesnapshot-names-unnamed-snapshots-after-the-test-with-a-counter');
    expect(existsSync(`${base}-1.png`)).toBe(true);
    expect(existsSync(`${base}-2.png`)).toBe(true);
    expect(JSON.parse(await readFile(`${base}-1.png.json`, 'utf8')).guestBuild).toBe('6.1.0-test');
  });

  it('throws the coded mismatch error and attaches the artifact to the running test', async ({ task }) => {
    await expect(page).toMatchImageSnapshot({ name: 'mismatch', pathTemplate });
    const error = await failureOf(expect(changed).toMatchImageSnapshot({ name: 'mismatch', pathTemplate }));
    expect(isMacvmError(error, 'MACVM_SNAPSHOT_MISMATCH')).toBe(true);
    const artifacts = (task.meta as { macvmArtifacts?: Artifact[] }).macvmArtifacts ?? [];
    const failed = artifacts.find((a) => a.snapshot?.diff);
    expect(failed).toMatchObject({ kind: 'snapshot', name: 'mismatch' });
    expect(existsSync(join(dir, 'reports', failed!.snapshot!.diff!))).toBe(true);
    // The written baseline of the first call was recorded too, without a diff.
    expect(artifacts.filter((a) => a.name === 'mismatch' && !a.snapshot?.diff)).toHaveLength(1);
  });

  it('supports .not', async () => {
    await expect(page).toMatchImageSnapshot({ name: 'negated', pathTemplate });
    await expect(changed).not.toMatchImageSnapshot({ name: 'negated', pathTemplate });
    await expect(failureOf(expect(page).not.toMatchImageSnapshot({ name: 'negated', pathTemplate }))).resolves.toBeInstanceOf(Error);
  });

  it("maps vitest's -u (SnapshotState._updateSnapshot 'all') to 'changed'", async () => {
    vi.stubEnv('MACVM_UPDATE_SNAPSHOTS', ''); // the env override would beat -u
    const state = expect.getState().snapshotState as unknown as { _updateSnapshot: string };
    // Proves the field exists where we read it: vitest sets 'new' locally, 'none' on CI.
    expect(['new', 'none']).toContain(state._updateSnapshot);
    await expect(page).toMatchImageSnapshot({ name: 'dash-u', pathTemplate, update: 'missing' });
    const previous = state._updateSnapshot;
    state._updateSnapshot = 'all';
    try {
      await expect(changed).toMatchImageSnapshot({ name: 'dash-u', pathTemplate });
    } finally {
      state._updateSnapshot = previous;
    }
    expect((await readFile(join(dir, 'snapshot-matcher.test.ts', 'dash-u.png'))).equals(changed)).toBe(true);
  });

  it('lets MACVM_UPDATE_SNAPSHOTS=none fail a missing baseline', async () => {
    vi.stubEnv('MACVM_UPDATE_SNAPSHOTS', 'none');
    const error = await failureOf(expect(page).toMatchImageSnapshot({ name: 'never-recorded', pathTemplate }));
    expect(isMacvmError(error, 'MACVM_SNAPSHOT_MISSING')).toBe(true);
  });
});
