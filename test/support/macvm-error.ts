import { MacvmError } from '../../src/errors.js';

/**
 * The MacvmError that `work` (a promise, or a function run now) rejects or throws with.
 * Fails the test when it succeeds, and rethrows anything that is not a MacvmError, so a
 * test asserting on `.code` never passes on the wrong kind of failure.
 */
export async function macvmErrorOf(work: Promise<unknown> | (() => unknown)): Promise<MacvmError> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (error) {
    if (error instanceof MacvmError) return error;
    throw error;
  }
  throw new Error('expected a MacvmError, but nothing was thrown');
}
