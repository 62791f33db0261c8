import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanConsoleText, consoleTail } from '../../src/vm/console-tail.js';

describe('consoleTail', () => {
  let dir: string | undefined;
  afterEach(async () => dir && rm(dir, { recursive: true, force: true }));

  it('returns the last lines without terminal escapes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-tail-'));
    const file = join(dir, 'console.log');
    const lines = Array.from({ length: 100 }, (_, i) => `\x1b[32mline ${i}\x1b[0m\r`);
    await writeFile(file, lines.join('\n') + '\n');
    expect(await consoleTail(file, 3)).toBe('line 97\nline 98\nline 99');
  });

  it('is empty for a missing file', async () => {
    expect(await consoleTail('/nonexistent/console.log')).toBe('');
  });

  it('cleans cursor controls and resets', () => {
    expect(cleanConsoleText('\x1bc\x1b[?25lhello\r\nworld')).toBe('hello\nworld');
  });
});
