import { describe, expect, it } from 'vitest';
import '../../src/fixtures/image-snapshot.js';
import { isMacvmError } from '../../src/errors.js';
import { resolveConfig, type HostFacts } from '../../src/runner/config.js';
import { encodePng } from '../../src/snapshot/png.js';
import { configureImageSnapshots } from '../../src/snapshot/settings.js';
import { syntheticPage } from '../fixtures/snapshot/synthetic-page.js';
import { useSnapshotSandbox } from '../support/snapshot-sandbox.js';

// The config's snapshots.maxDiffPixelRatio on its own must take effect: a default of
// maxDiffPixels: 0 used to be filled in beside it, and "the stricter wins" then allowed 0.

const host: HostFacts = { platform: 'linux', arch: 'x64', cpus: 8, totalMemoryBytes: 24 * 2 ** 30 };
const snapshotsOf = (raw: unknown) => resolveConfig(raw, { root: '/project', env: {}, host }).snapshots;

const base = syntheticPage({ width: 100, height: 100, seed: 5 });
const fourPixelsOff = { ...base, data: Buffer.from(base.data) };
// A 2×2 white square: solid enough that pixelmatch does not take it for anti-aliasing.
for (const [x, y] of [[50, 50], [51, 50], [50, 51], [51, 51]] as const) fourPixelsOff.data.writeUInt32BE(0xffffffff, (y * 100 + x) * 4);

describe('snapshot tolerance from the config', () => {
  const sandbox = useSnapshotSandbox({ provider: 'qemu' }, '{name}.png');

  it('leaves unset limits unset', () => {
    const snapshots = snapshotsOf({ snapshots: { maxDiffPixelRatio: 0.01 } });
    expect(snapshots.maxDiffPixels).toBeUndefined();
    expect(snapshots.maxDiffPixelRatio).toBe(0.01);
  });

  it('a configured maxDiffPixelRatio alone allows that share of pixels', async () => {
    await expect(encodePng(base)).toMatchImageSnapshot({ name: 'ratio', pathTemplate: sandbox.pathTemplate });
    configureImageSnapshots(snapshotsOf({ snapshots: { maxDiffPixelRatio: 0.001 } })); // 10 of 10,000 pixels
    await expect(encodePng(fourPixelsOff)).toMatchImageSnapshot({ name: 'ratio', pathTemplate: sandbox.pathTemplate });
  });

  it('with both limits the stricter wins, and the message states both consistently', async () => {
    await expect(encodePng(base)).toMatchImageSnapshot({ name: 'both', pathTemplate: sandbox.pathTemplate });
    configureImageSnapshots(snapshotsOf({ snapshots: { maxDiffPixelRatio: 0.001, maxDiffPixels: 2 } }));
    let error: unknown;
    try {
      await expect(encodePng(fourPixelsOff)).toMatchImageSnapshot({ name: 'both', pathTemplate: sandbox.pathTemplate });
    } catch (caught) {
      error = caught;
    }
    expect(isMacvmError(error, "MACVM_SNAPSHOT_MISMATCH"), String(error)).toBe(true);
    expect((error as Error).message).toContain('4 pixels (0.04 %)');
    expect((error as Error).message).toContain('allowed: 2 pixels');
  });
});
