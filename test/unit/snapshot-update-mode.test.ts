import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { resolveUpdateMode } from '../../src/snapshot/update-mode.js';

describe('resolveUpdateMode', () => {
  it.each([
    [{ env: {} }, 'missing'],
    [{ env: { CI: 'true' } }, 'none'],
    [{ env: { CI: 'false' } }, 'missing'],
    [{ env: {}, vitest: 'new' }, 'missing'],
    [{ env: {}, vitest: 'none' }, 'none'],
    [{ env: {}, vitest: 'all' }, 'changed'], // vitest -u
    [{ env: { CI: '1' }, vitest: 'all' }, 'changed'],
    [{ env: { MACVM_UPDATE_SNAPSHOTS: 'all' }, vitest: 'new' }, 'all'],
    [{ env: { MACVM_UPDATE_SNAPSHOTS: 'none' }, vitest: 'all' }, 'none'],
    [{ env: { MACVM_UPDATE_SNAPSHOTS: 'missing' }, explicit: 'changed' }, 'changed'],
    [{ env: {}, vitest: 'new', configured: 'none' }, 'none'],
    [{ env: {}, vitest: 'all', configured: 'none' }, 'changed'],
  ] as const)('%j → %s', (sources, mode) => {
    expect(resolveUpdateMode({ ...sources, env: { ...sources.env } })).toBe(mode);
  });

  it('rejects an unknown MACVM_UPDATE_SNAPSHOTS value with a coded error naming it', () => {
    try {
      resolveUpdateMode({ env: { MACVM_UPDATE_SNAPSHOTS: 'yes' } });
      expect.fail('accepted "yes"');
    } catch (error) {
      expect(isMacvmError(error, 'MACVM_CONFIG_INVALID')).toBe(true);
      expect((error as Error).message).toContain('MACVM_UPDATE_SNAPSHOTS');
    }
  });
});
