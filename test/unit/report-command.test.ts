import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reportCommand } from '../../src/runner/commands/report.js';
import { buildReportsDir } from '../fixtures/report/build-reports-dir.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { stream, text: () => text };
}

describe('macvm report', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-report-cmd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes index.html and junit.xml into --reports-dir and prints where', async () => {
    await buildReportsDir(dir);
    const out = capture();
    const err = capture();
    expect(await reportCommand.run({ argv: ['--reports-dir', dir], stdout: out.stream, stderr: err.stream })).toBe(0);
    expect(out.text().trim().split('\n')).toEqual([join(dir, 'index.html'), join(dir, 'junit.xml')]);
    expect((await stat(join(dir, 'index.html'))).size).toBeGreaterThan(1000);
    expect((await stat(join(dir, 'junit.xml'))).size).toBeGreaterThan(500);
    expect(err.text()).toBe('');
  });

  it('turns an unknown flag into MACVM_BAD_ARGUMENT', async () => {
    const out = capture();
    await expect(reportCommand.run({ argv: ['--reportsdir', dir], stdout: out.stream, stderr: out.stream })).rejects.toMatchObject({ code: 'MACVM_BAD_ARGUMENT' });
  });

  it('fails with MACVM_REPORT_FAILED when the folder holds no results', async () => {
    const out = capture();
    await expect(reportCommand.run({ argv: ['--reports-dir', dir], stdout: out.stream, stderr: out.stream })).rejects.toMatchObject({ code: 'MACVM_REPORT_FAILED' });
  });
});
