import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WRITE_BEHIND_BYTES, WriteThrough } from '../../src/oci/write-through.js';

describe('WriteThrough', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'macvm-write-through-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts a write-behind sync each WRITE_BEHIND_BYTES written, not before', async () => {
    const file = await open(join(dir, 'disk.img'), 'w+');
    try {
      const datasync = vi.spyOn(file, 'datasync');
      const through = new WriteThrough();
      through.wrote(file, WRITE_BEHIND_BYTES - 1);
      expect(datasync).not.toHaveBeenCalled();
      through.wrote(file, 1);
      expect(datasync).toHaveBeenCalledTimes(1);
      await through.settle();
      // The count starts again after a sync: half the threshold starts none.
      through.wrote(file, WRITE_BEHIND_BYTES / 2);
      await through.settle();
      expect(datasync).toHaveBeenCalledTimes(1);
    } finally {
      await file.close();
    }
  });

  it('journals a piece only after a sync that started after it was written, and coalesces syncs', async () => {
    const file = await open(join(dir, 'disk.img'), 'w+');
    try {
      const order: string[] = [];
      const real = file.datasync.bind(file);
      vi.spyOn(file, 'datasync').mockImplementation(async () => {
        order.push('sync start');
        await real();
        order.push('sync end');
      });
      const through = new WriteThrough();
      await file.write(Buffer.from('piece 1'), 0, 7, 0);
      through.after(file, async () => void order.push('journal 1'));
      await file.write(Buffer.from('piece 2'), 0, 7, 7);
      through.after(file, async () => void order.push('journal 2'));
      through.after(file, async () => void order.push('journal 3'));
      await through.settle();
      // Piece 1 rides on the first sync; pieces 2 and 3 were written while it ran, so they share the next.
      expect(order).toEqual(['sync start', 'sync end', 'journal 1', 'sync start', 'sync end', 'journal 2', 'journal 3']);
    } finally {
      await file.close();
    }
  });
});
