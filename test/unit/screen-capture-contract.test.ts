import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { captureMacosScreen, captureStable } from '../../src/guest/screen.js';
import { encodePng } from '../../src/snapshot/png.js';
import { PNG } from 'pngjs';
import { FakeGuestSession } from '../fixtures/macos/fake-guest-session.js';

const frame = (value: number) => encodePng({ width: 8, height: 8, data: Buffer.alloc(256, value) });

describe('screencapture contract', () => {
  it('runs screencapture -x -t png into a temp file, downloads it, deletes it', async () => {
    const png = frame(90);
    let guest!: FakeGuestSession;
    guest = new FakeGuestSession((argv) => {
      if (argv[0] === 'screencapture') guest.files.set(argv[4]!, png);
      return {};
    });
    expect((await captureMacosScreen(guest)).equals(png)).toBe(true);
    const [capture, read, remove] = guest.commands;
    expect(capture!.slice(0, 4)).toEqual(['screencapture', '-x', '-t', 'png']);
    expect(capture![4]).toMatch(/^\/tmp\/macvm-screen-[0-9a-f]{12}\.png$/);
    expect(read).toEqual(['<sftp read>', capture![4]]);
    expect(remove).toEqual(['rm', '-f', capture![4]]);
  });

  it('explains a failed capture (no GUI session / no permission) and still cleans up', async () => {
    const guest = new FakeGuestSession((argv) => (argv[0] === 'screencapture' ? { exitCode: 1, stderr: 'could not create image from display' } : {}));
    const error = await captureMacosScreen(guest).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_NOT_SUPPORTED')).toBe(true);
    expect((error as Error).message).toContain('could not create image from display');
    expect(guest.commands.at(-1)![0]).toBe('rm');
  });
});

describe('captureStable', () => {
  it('retakes until two consecutive captures match and returns the settled one', async () => {
    const frames = [frame(10), frame(20), frame(30), frame(30)];
    let taken = 0;
    const result = await captureStable(async () => frames[Math.min(taken++, frames.length - 1)]!, { intervalMs: 1 });
    expect(taken).toBe(4);
    expect(result.equals(frames[3]!)).toBe(true);
  });

  it('compares pixels, not bytes: the same picture from another encoder counts as stable', async () => {
    const ours = frame(77);
    const png = new PNG({ width: 8, height: 8 });
    png.data.fill(77);
    const theirs = PNG.sync.write(png, { filterType: 4 });
    expect(ours.equals(theirs)).toBe(false);
    const frames = [ours, theirs];
    let taken = 0;
    await captureStable(async () => frames[taken++]!, { intervalMs: 1 });
    expect(taken).toBe(2);
  });

  it('throws MACVM_SCREEN_UNSTABLE when the screen never settles', async () => {
    let n = 0;
    const error = await captureStable(async () => frame(n++ % 250), { timeoutMs: 50, intervalMs: 5 }).catch((e: unknown) => e);
    expect(isMacvmError(error, 'MACVM_SCREEN_UNSTABLE')).toBe(true);
    expect(n).toBeGreaterThan(2);
  });
});
