/**
 * Where the user called, for errors that are born elsewhere. A failed guest command is rejected
 * from an SSH channel's close event, so its own stack is ssh2's protocol handlers: V8's async
 * stack traces cannot reach back through a promise settled by an event, and vitest's code frame
 * then points at no line of the spec. (Playwright meets the same with its protocol and answers it
 * the same way.) So the public call takes its stack as it starts, cheaply (V8 formats a stack only
 * when it is read), and a failure gets those frames first — the spec's line — with its own after.
 */
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** macvm's own code, sources or build: its frames are the "how", not the "where". */
const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OWN_CODE = [join(PACKAGE_ROOT, 'src') + sep, join(PACKAGE_ROOT, 'dist') + sep];
const SITED = Symbol.for('macvm.callSite');
/** A stack line that is a frame ("    at …"), not the message. */
const FRAME = /^\s+at /;

export interface CallSite {
  readonly holder: { stack?: string };
}

/** The caller's stack, taken now (callSite's own frame left out). */
export function callSite(): CallSite {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, callSite);
  return { holder };
}

/** The frames of `site` outside macvm (and Node's internals). */
export function userFrames(site: CallSite): string[] {
  return (site.holder.stack ?? '')
    .split('\n')
    .slice(1)
    .filter((line) => FRAME.test(line) && !line.includes('node:internal') && !OWN_CODE.some((dir) => line.includes(dir)));
}

/**
 * `error` with the user's frames first in its stack (once: an error passed on through another
 * call keeps the first site). Anything that is not an Error, or a site with no user frames,
 * passes unchanged.
 */
export function withCallSite<T>(error: T, site: CallSite): T {
  if (!(error instanceof Error) || (error as unknown as Record<symbol, unknown>)[SITED]) return error;
  const frames = userFrames(site);
  if (frames.length === 0) return error;
  const lines = (error.stack ?? `${error.name}: ${error.message}`).split('\n');
  const firstFrame = lines.findIndex((line) => FRAME.test(line));
  const header = firstFrame < 0 ? lines : lines.slice(0, firstFrame);
  const own = firstFrame < 0 ? [] : lines.slice(firstFrame);
  error.stack = [...header, ...frames, ...own].join('\n');
  Object.defineProperty(error, SITED, { value: true, enumerable: false });
  return error;
}
