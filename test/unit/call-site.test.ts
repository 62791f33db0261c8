import { readFile } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { callSite, userFrames, withCallSite } from '../../src/util/call-site.js';

/** An error born in an I/O callback: Node gives it no JavaScript frames at all. */
function failFromAnEvent(site = callSite()): Promise<never> {
  return new Promise((_, reject) => readFile('/no/such/file/anywhere', (error) => reject(withCallSite(error!, site))));
}

const framesOf = (error: Error) => error.stack!.split('\n').filter((line) => /^\s+at /.test(line));

describe('call sites for errors born in events', () => {
  it('an error with no frames of the caller gets them, first, under its own message', async () => {
    const bare = await new Promise<Error>((resolve) => readFile('/no/such/file/anywhere', (error) => resolve(error!)));
    expect(framesOf(bare).some((frame) => frame.includes('call-site.test.ts'))).toBe(false);
    const sited = await failFromAnEvent().catch((error: Error) => error);
    expect(sited.stack!.split('\n')[0]).toMatch(/^Error: ENOENT/);
    expect(framesOf(sited)[0]).toContain('call-site.test.ts');
    expect((sited as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('leaves out macvm\'s own frames (src/ or dist/) and keeps the first site of an error passed on', async () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const stack = [
      'Error',
      `    at MacVM.guard (${join(root, 'src', 'machine', 'macvm.ts')}:300:18)`,
      `    at MacVM.exec (${join(root, 'dist', 'machine', 'macvm.js')}:86:17)`,
      '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
      `    at file://${join(root, 'specs', 'cart.spec.ts')}:12:5`,
    ].join('\n');
    expect(userFrames({ holder: { stack } })).toEqual([`    at file://${join(root, 'specs', 'cart.spec.ts')}:12:5`]);
    const error = await failFromAnEvent().catch((e: Error) => e);
    const first = error.stack;
    function elsewhere() {
      return callSite();
    }
    expect(withCallSite(error, elsewhere()).stack).toBe(first);
  });

  it('passes through what is not an Error', () => {
    expect(withCallSite('a string', callSite())).toBe('a string');
    expect(withCallSite(undefined, callSite())).toBe(undefined);
  });
});
