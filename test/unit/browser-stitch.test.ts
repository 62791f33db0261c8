import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { planScrollSteps, stitchFrames, type Frame } from '../../src/guest/full-page-screenshot.js';

/** A "document" as device pixels: each CSS row y gets a colour derived from y, so any misplaced row shows. */
function documentImage(cssHeight: number, cssWidth: number, scale: number): PNG {
  const png = new PNG({ width: cssWidth * scale, height: cssHeight * scale });
  for (let row = 0; row < png.height; row++) {
    const y = Math.floor(row / scale);
    for (let x = 0; x < png.width; x++) {
      const i = (row * png.width + x) * 4;
      png.data[i] = y % 256;
      png.data[i + 1] = Math.floor(y / 256);
      png.data[i + 2] = x % 256;
      png.data[i + 3] = 255;
    }
  }
  return png;
}

/** What a browser would return at scroll offset y: the viewport's rows, plus a scrollbar column band. */
function viewportShot(doc: PNG, y: number, innerHeight: number, scale: number, scrollbar: number): PNG {
  const width = doc.width + scrollbar * scale;
  const frame = new PNG({ width, height: innerHeight * scale });
  frame.data.fill(0x7f);
  for (let row = 0; row < frame.height; row++) {
    const srcRow = y * scale + row;
    if (srcRow >= doc.height) break;
    doc.data.copy(frame.data, row * width * 4, srcRow * doc.width * 4, (srcRow + 1) * doc.width * 4);
  }
  return frame;
}

describe('planScrollSteps', () => {
  it('steps by the viewport and ends flush with the bottom (last step partial)', () => {
    expect(planScrollSteps(3000, 437)).toEqual([0, 437, 874, 1311, 1748, 2185, 2563]);
    expect(planScrollSteps(1000, 500)).toEqual([0, 500]);
  });
  it('takes one frame for a page shorter than the viewport', () => {
    expect(planScrollSteps(300, 600)).toEqual([0]);
  });
});

describe('stitchFrames', () => {
  for (const scale of [1, 2]) {
    it(`rebuilds a 3000 px document exactly from viewport frames at device pixel ratio ${scale}`, () => {
      const cssWidth = 120;
      const doc = documentImage(3000, cssWidth, scale);
      const viewportHeight = 437;
      const frames: Frame[] = planScrollSteps(3000, viewportHeight).map((y) => ({ png: viewportShot(doc, y, viewportHeight, scale, 15), scrollY: y }));
      const stitched = stitchFrames(frames, { documentHeight: 3000, viewportWidth: cssWidth, viewportHeight, innerHeight: viewportHeight });
      expect([stitched.width, stitched.height]).toEqual([doc.width, doc.height]);
      expect(Buffer.compare(stitched.data, doc.data)).toBe(0);
    });
  }

  it('uses the scroll offset the browser reports, not the one asked for', () => {
    const doc = documentImage(900, 50, 1);
    // The browser clamped the second step from 600 to 500 (document 900, viewport 400).
    const frames: Frame[] = [0, 400, 500].map((y) => ({ png: viewportShot(doc, y, 400, 1, 0), scrollY: y }));
    const stitched = stitchFrames(frames, { documentHeight: 900, viewportWidth: 50, viewportHeight: 400, innerHeight: 400 });
    expect(stitched.height).toBe(900);
    expect(Buffer.compare(stitched.data, doc.data)).toBe(0);
  });
});
