import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, vi } from 'vitest';
import { setSnapshotEnvironment, type SnapshotEnvironment } from '../../src/snapshot/environment.js';
import { configureImageSnapshots, setReportsDir } from '../../src/snapshot/settings.js';

/**
 * Hooks for tests of toMatchImageSnapshot: a private dir for baselines and reports, the given
 * environment, config defaults reset after each test, and the update mode pinned to the local
 * default — vitest sets its snapshot mode to 'none' when it sees CI, which the matcher honours,
 * so without this the tests would mean one thing in CI and another on a laptop.
 * `dir` and `pathTemplate` are read inside tests (they are set in beforeAll).
 */
export function useSnapshotSandbox(environment: SnapshotEnvironment, template = '{specName}/{name}.png'): { dir: string; pathTemplate: string } {
  const sandbox = { dir: '', pathTemplate: '' };
  beforeAll(async () => {
    sandbox.dir = await mkdtemp(join(tmpdir(), 'macvm-snapshots-'));
    sandbox.pathTemplate = join(sandbox.dir, template);
    setReportsDir(join(sandbox.dir, 'reports'));
    setSnapshotEnvironment(environment);
  });
  afterAll(async () => {
    setReportsDir(undefined);
    setSnapshotEnvironment(undefined);
    await rm(sandbox.dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    vi.stubEnv('CI', '');
    vi.stubEnv('MACVM_UPDATE_SNAPSHOTS', 'missing');
    return () => vi.unstubAllEnvs();
  });
  afterEach(() => configureImageSnapshots({}));
  return sandbox;
}
