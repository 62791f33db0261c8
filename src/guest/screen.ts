import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MacvmError, messageOf } from '../errors.js';
import { decodePng, readPngHeader, type RgbaImage } from '../snapshot/png.js';
import { quoteShellWord } from './shell-quote.js';
import type { GuestSession } from './types.js';

export interface StableCaptureOptions {
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number;
  /** Pause between captures (default 100 ms). */
  intervalMs?: number;
}

/**
 * Takes screenshots until two consecutive ones show the same pixels (animations, a blinking
 * cursor, a page still loading), and returns the last. Pixels are compared decoded, since two
 * encoders (or one with a timestamp chunk) can write the same picture as different bytes.
 *
 * When the screen never settles it throws MACVM_SCREEN_UNSTABLE rather than returning a
 * picture that would make the snapshot comparison flaky; mask the moving part or raise
 * timeoutMs.
 */
export async function captureStable(capture: () => Promise<Buffer>, options: StableCaptureOptions = {}): Promise<Buffer> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const intervalMs = options.intervalMs ?? 100;
  const started = Date.now();
  let previous = await capture();
  let previousPixels: RgbaImage | undefined;
  let attempts = 1;
  for (;;) {
    if (Date.now() - started >= timeoutMs) {
      throw new MacvmError('MACVM_SCREEN_UNSTABLE', `The screen kept changing: ${attempts} captures over ${Date.now() - started} ms and no two consecutive ones matched.`, {
        hint: 'Wait for the content to settle (or disable animations and the cursor), mask the part that moves, or raise timeoutMs.',
        details: { attempts, timeoutMs },
      });
    }
    await sleep(intervalMs);
    const next = await capture();
    attempts++;
    if (next.equals(previous)) return next;
    previousPixels ??= decodePng(previous);
    const nextPixels = decodePng(next);
    if (nextPixels.width === previousPixels.width && nextPixels.height === previousPixels.height && nextPixels.data.equals(previousPixels.data)) return next;
    previous = next;
    previousPixels = nextPixels;
  }
}

/**
 * The macOS guest's screen: `screencapture -x` (no sound) into a temp file, downloaded over
 * the session, then deleted. Needs a logged-in GUI session and, since macOS 10.15, Screen
 * Recording permission for the process that runs it (sshd's, in the golden image).
 */
export async function captureMacosScreen(session: GuestSession): Promise<Buffer> {
  const path = `/tmp/macvm-screen-${randomBytes(6).toString('hex')}.png`;
  try {
    const result = await session.exec(`screencapture -x -t png ${quoteShellWord(path)}`, { reject: false, timeoutMs: 30_000 });
    if (result.exitCode !== 0) {
      throw new MacvmError('MACVM_NOT_SUPPORTED', `screencapture failed in the guest (exit ${result.exitCode}): ${result.stderr.trim() || 'no output'}.`, {
        hint: 'The guest needs a logged-in GUI session (auto-login in the golden image) and Screen Recording permission for sshd-keygen-wrapper / the ssh user.',
        details: { stderr: result.stderr },
      });
    }
    let png: Buffer;
    try {
      png = await session.readFile(path);
    } catch (error) {
      throw new MacvmError('MACVM_TRANSFER_FAILED', `Downloading the screenshot ${path} from the guest failed: ${messageOf(error)}`, { cause: error });
    }
    readPngHeader(png, { code: 'MACVM_PNG_INVALID', label: `the guest's screenshot ${path}` });
    return png;
  } finally {
    await session.exec(`rm -f ${quoteShellWord(path)}`, { reject: false, timeoutMs: 10_000 }).catch(() => {});
  }
}
