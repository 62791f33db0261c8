import { describe, expect, it } from 'vitest';
import '../../src/fixtures/image-snapshot.js';
import { defaultRunContext } from '../../src/runner/default-context.js';
import { startSuiteVM } from '../../src/runner/suite-vm.js';
import { startMacVM } from '../../src/machine/start.js';
import { macvmErrorOf } from '../support/macvm-error.js';

// Options passed in code go through the same validator as macvm.config.ts: one code
// (MACVM_BAD_ARGUMENT), the key named, a did-you-mean for typos, a hint — and nothing starts.

describe('options passed in code', () => {
  it('startMacVM: a misspelt key is an error naming the key it meant, before any VM starts', async () => {
    const error = await macvmErrorOf(startMacVM({ image: 'linux-test', memroy: '8GiB' } as never));
    expect(error.code).toBe('MACVM_BAD_ARGUMENT');
    expect(error.message).toContain('memroy is not a known key (did you mean "memory"?)');
    expect(error.hint).toMatch(/README/);
  });

  it('startMacVM: bad values of every kind get the same code, each problem named', async () => {
    const error = await macvmErrorOf(startMacVM({ image: 'linux-test', cpus: 0, memory: '8 gigs' }));
    expect(error.code).toBe('MACVM_BAD_ARGUMENT');
    expect(error.message).toContain('cpus must be a positive integer, got 0');
    expect(error.message).toContain('memory must be a size such as "8GiB"');
    expect(error.details.problems).toHaveLength(2);
  });

  it('withMacVM / macvmTest options: checked before a slot is even asked for', async () => {
    const context = { ...defaultRunContext(), slots: {} };
    const error = await macvmErrorOf(startSuiteVM('checkout', { image: 'linux-test', memroy: '1GiB', cpus: 1.5 } as never, context));
    expect(error.code).toBe('MACVM_BAD_ARGUMENT');
    expect(error.message).toMatch(/^withMacVM\("checkout"\) options: /);
    expect(error.message).toContain('did you mean "memory"?');
    expect(error.message).toContain('cpus must be a positive integer, got 1.5');
  });

  it('toMatchImageSnapshot: "treshold" is not silently ignored', async () => {
    const error = await macvmErrorOf(expect(Buffer.from('not even a png')).toMatchImageSnapshot({ treshold: 0.2 } as never));
    expect(error.code).toBe('MACVM_BAD_ARGUMENT');
    expect(error.message).toContain('treshold is not a known key (did you mean "threshold"?)');
  });

  it('toMatchImageSnapshot: a mask must be {x, y, width, height}', async () => {
    const error = await macvmErrorOf(expect(Buffer.from('x')).toMatchImageSnapshot({ masks: [{ x: 0, y: 0, w: 4, height: 4 }] } as never));
    expect(error.message).toContain('masks[0].width is required');
    expect(error.message).toContain('masks[0].w is not a known key');
  });
});
