import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MacvmError } from '../../src/errors.js';

const root = join(import.meta.dirname, '..', 'fixtures', 'errors');

describe('a MacvmError as a person sees it', () => {
  it('carries its code in its name, as Node coded errors do', () => {
    const error = new MacvmError('MACVM_SNAPSHOT_MISMATCH', 'differs');
    expect(error.name).toBe('MacvmError [MACVM_SNAPSHOT_MISMATCH]');
    expect(error.code).toBe('MACVM_SNAPSHOT_MISMATCH');
    expect(error.toJSON()).toMatchObject({ name: 'MacvmError [MACVM_SNAPSHOT_MISMATCH]', code: 'MACVM_SNAPSHOT_MISMATCH' });
  });

  it("vitest's terminal output shows the MACVM code, not only the cause's ENOENT", async () => {
    const run = await promisify(execFile)(process.execPath, [join('node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', root, '--config', join(root, 'vitest.config.ts'), '--reporter=default'], {
      // A vitest of its own: none of this worker's VITEST_* variables.
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('VITEST'))), NO_COLOR: '1', CI: 'true' },
    }).catch((error: { stdout: string; stderr: string }) => error);
    const output = `${run.stdout}${run.stderr}`;
    expect(output, output).toContain('MacvmError [MACVM_IMAGE_NOT_FOUND]: No image "linux-tset".');
  });
});
