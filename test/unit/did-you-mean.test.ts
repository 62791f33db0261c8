import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../../src/runner/commands/args.js';
import { readQemuManifest } from '../../src/vm/qemu/manifest.js';
import { macvmErrorOf } from '../support/macvm-error.js';

describe('did-you-mean where a name is typed', () => {
  it('an unknown image name suggests the image it is close to', async () => {
    const home = await mkdtemp(join(tmpdir(), 'macvm-dym-'));
    try {
      await mkdir(join(home, 'images', 'linux-test'), { recursive: true });
      const typo = await macvmErrorOf(readQemuManifest(join(home, 'images', 'linux-tset'), 'linux-tset'));
      expect(typo).toMatchObject({ code: 'MACVM_IMAGE_NOT_FOUND', hint: expect.stringContaining('Did you mean "linux-test"?') });
      // The missing image.json is the message itself: no ENOENT cause for vitest to print below it.
      expect(typo.cause).toBeUndefined();
      // A missing image that is its own name is not "did you mean" itself: it is built.
      const unbuilt = await macvmErrorOf(readQemuManifest(join(home, 'images', 'linux-browser'), 'linux-browser'));
      expect(unbuilt.hint).toBe('Build it with `macvm image build linux-browser`.');
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('an unknown CLI flag suggests the flag it is close to', async () => {
    const error = await macvmErrorOf(() => parseCommandArgs('gc', ['--dryrun'], { 'dry-run': { type: 'boolean' }, all: { type: 'boolean' } }));
    expect(error).toMatchObject({ code: 'MACVM_BAD_ARGUMENT', hint: 'Did you mean --dry-run? See `macvm gc --help`.' });
    const far = await macvmErrorOf(() => parseCommandArgs('gc', ['--banana'], { 'dry-run': { type: 'boolean' } }));
    expect(far.hint).toBe('See `macvm gc --help`.');
  });
});
