import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { isMacvmError } from '../../src/errors.js';
import { decodePng, decodePngAsync, encodePng, readPngHeader, toPngBytes } from '../../src/snapshot/png.js';
import { syntheticPage } from '../fixtures/snapshot/synthetic-page.js';

const page = syntheticPage({ width: 300, height: 180, seed: 7 });
// Some translucent pixels, so alpha survives every path.
for (let i = 3; i < 4000; i += 16) page.data[i] = 128;

function pngjsEncode(filterType: number, colorType: 2 | 6): Buffer {
  const png = new PNG({ width: page.width, height: page.height });
  page.data.copy(png.data);
  return PNG.sync.write(png, { filterType, colorType, inputColorType: 6 });
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(isMacvmError(error) && error.code).toBe(code);
    return;
  }
  expect.fail(`expected a MacvmError ${code}`);
}

describe('png decode', () => {
  it.each([0, 1, 2, 3, 4, -1])('decodes RGBA rows with filter %i exactly as pngjs does', (filterType) => {
    const bytes = pngjsEncode(filterType, 6);
    const ours = decodePng(bytes);
    expect([ours.width, ours.height]).toEqual([page.width, page.height]);
    expect(ours.data.equals(PNG.sync.read(bytes).data)).toBe(true);
    expect(ours.data.equals(page.data)).toBe(true);
  });

  it.each([0, 1, 2, 3, 4, -1])('expands RGB rows with filter %i to opaque RGBA', (filterType) => {
    const bytes = pngjsEncode(filterType, 2);
    const ours = decodePng(bytes);
    expect(ours.data.equals(PNG.sync.read(bytes).data)).toBe(true);
    expect(ours.data[3]).toBe(255);
  });

  it('decodes other formats (palette/grey, 16-bit) through pngjs', () => {
    const grey = new PNG({ width: 4, height: 2 });
    grey.data.fill(200);
    const bytes = PNG.sync.write(grey, { colorType: 0, inputColorType: 6 });
    expect(readPngHeader(bytes).colorType).toBe(0);
    const decoded = decodePng(bytes);
    expect(decoded.data.length).toBe(4 * 2 * 4);
    expect(decoded.data[3]).toBe(255);
  });

  // Flat runs (where Paeth's per-pixel shortcuts apply), noise (where they do not), runs that
  // repeat only the pixel above or only the one to the left, and bytes near 0 and 255 (wrap-around).
  const mixed = (() => {
    const width = 97;
    const height = 61;
    const data = Buffer.alloc(width * height * 4);
    let seed = 99;
    const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4;
        const zone = ((x >> 4) + (y >> 3)) % 4;
        if (zone === 0) data.set([240, 241, 250, 255], i); // flat
        else if (zone === 1) for (let c = 0; c < 4; c++) data[i + c] = Math.floor(rnd() * 256); // noise, alpha too
        else if (zone === 2) data.set([x * 3, 250 + (x % 6), 5, 128 + (x % 2)], i); // repeats the pixel above
        else data.set([y * 4, 3, 254 + (y % 2), 255], i); // repeats the pixel to the left
      }
    }
    return { width, height, data };
  })();

  it.each([0, 1, 2, 3, 4, -1])('decodes noise, flat runs and repeats with filter %i as pngjs does, sync and async', async (filterType) => {
    for (const colorType of [6, 2] as const) {
      const png = new PNG({ width: mixed.width, height: mixed.height });
      mixed.data.copy(png.data);
      const bytes = PNG.sync.write(png, { filterType, colorType, inputColorType: 6 });
      const reference = PNG.sync.read(bytes).data;
      expect(decodePng(bytes).data.equals(reference), `colour type ${colorType}`).toBe(true);
      expect((await decodePngAsync(bytes)).data.equals(reference), `colour type ${colorType}, async`).toBe(true);
    }
  });

  it('round-trips its own encoder through pngjs', () => {
    const bytes = encodePng(page);
    expect(PNG.sync.read(bytes).data.equals(page.data)).toBe(true);
    expect(decodePng(bytes).data.equals(page.data)).toBe(true);
  });
});

describe('png input', () => {
  const bytes = encodePng(page);

  it('accepts a Buffer, a Uint8Array view, base64 and a data: URL', () => {
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(toPngBytes(bytes)).toBe(bytes);
    expect(toPngBytes(view).equals(bytes)).toBe(true);
    expect(toPngBytes(bytes.toString('base64')).equals(bytes)).toBe(true);
    expect(toPngBytes(`data:image/png;base64,${bytes.toString('base64')}`).equals(bytes)).toBe(true);
  });

  it('rejects what is not a PNG with MACVM_PNG_INVALID', () => {
    expectCode(() => toPngBytes(Buffer.from('GIF89a, certainly not a png, padded to be long enough......')), 'MACVM_PNG_INVALID');
    expectCode(() => toPngBytes('bm90IGEgcG5n'), 'MACVM_PNG_INVALID');
    expectCode(() => toPngBytes(42), 'MACVM_PNG_INVALID');
  });

  it('a string is base64, and a file path passed by mistake is named as one', () => {
    const error = (() => {
      try {
        toPngBytes('/tmp/shots/cart.png');
      } catch (e) {
        return e as { code: string; message: string; hint?: string };
      }
    })();
    expect(error?.code).toBe('MACVM_PNG_INVALID');
    expect(error?.message).toContain('a string, read as base64');
    expect(error?.hint).toContain('readFileSync(path)');
    // Base64 that is simply not a PNG gets no file-path hint.
    try {
      toPngBytes('bm90IGEgcG5n');
    } catch (e) {
      expect((e as { hint?: string }).hint ?? '').not.toContain('file path');
    }
  });

  it('reports a truncated file before inflating it', () => {
    expectCode(() => toPngBytes(bytes.subarray(0, bytes.length - 100)), 'MACVM_PNG_INVALID');
  });

  it('reports corrupt image data (the zlib checksum) with the caller\'s code and label', async () => {
    const broken = Buffer.from(bytes);
    broken[60] = broken[60]! ^ 0xff; // inside the IDAT stream
    try {
      decodePng(broken, { code: 'MACVM_SNAPSHOT_CORRUPT', label: 'baseline /x/cart.png' });
      expect.fail('decoded a corrupt file');
    } catch (error) {
      expect(isMacvmError(error, 'MACVM_SNAPSHOT_CORRUPT')).toBe(true);
      expect((error as Error).message).toContain('/x/cart.png');
    }
    const failed = await decodePngAsync(broken, { code: 'MACVM_SNAPSHOT_CORRUPT', label: 'baseline /x/cart.png' }).catch((error: unknown) => error);
    expect(isMacvmError(failed, 'MACVM_SNAPSHOT_CORRUPT')).toBe(true);
  });
});

describe('png encode options', () => {
  it("writes unfiltered rows with filter 'none' that decode to the same pixels", () => {
    const bytes = encodePng(page, { filter: 'none', level: 1 });
    expect(PNG.sync.read(bytes).data.equals(page.data)).toBe(true);
    expect(bytes.equals(encodePng(page))).toBe(false);
  });
});
