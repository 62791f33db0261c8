import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Lz4BlockError, decodeLz4Block, encodeLz4Block } from '../../src/oci/lz4-block.js';
import { OUTPUT_AT, createWasmLz4Block } from '../../src/oci/lz4-block-wasm.js';

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const code = readFileSync(process.execPath).subarray(1 << 20, 9 << 20);

/** Disk-like bytes: machine code, zeros, short repeating patterns and noise, in random runs. */
function diskLike(length: number, next: () => number): Uint8Array {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; ) {
    const run = Math.min(length - at, 1 + Math.floor(next() * 3000));
    const kind = Math.floor(next() * 4);
    if (kind === 0) for (let i = 0; i < run; i++) out[at + i] = next() * 256;
    else if (kind === 1) {
      const period = 1 + Math.floor(next() * 12);
      for (let i = 0; i < run; i++) out[at + i] = (i % period) * 7 + 1;
    } else if (kind === 2) {
      const from = Math.floor(next() * (code.length - run));
      out.set(code.subarray(from, from + run), at);
    } // kind 3: zeros
    at += run;
  }
  return out;
}

const GUARD = 0xa5;
const decoder = createWasmLz4Block(256 * 1024);
/** Window and output start this far into the output area, so a write before the window shows in the guard bytes. */
const BASE = OUTPUT_AT + 1000;

/** The wasm decode of `block` after `window`, or -1; throws if anything outside the output range changed. */
function wasmDecode(block: Uint8Array, window: Uint8Array, outputSize: number): { end: number; output: Uint8Array } {
  const memory = decoder.memory;
  memory.fill(GUARD, OUTPUT_AT, BASE + window.length + outputSize + 64);
  memory.set(block, 0);
  memory.set(window, BASE);
  const outputStart = BASE + window.length;
  const outputEnd = outputStart + outputSize;
  const end = decoder.decode(0, block.length, outputStart, outputEnd, BASE);
  for (let i = OUTPUT_AT; i < BASE; i++) if (memory[i] !== GUARD) throw new Error(`wrote at ${i - BASE}, before the window`);
  for (let i = outputEnd; i < outputEnd + 64; i++) if (memory[i] !== GUARD) throw new Error(`wrote ${i - outputEnd} bytes past outputEnd`);
  if (Buffer.compare(memory.subarray(BASE, outputStart), window) !== 0) throw new Error('the window changed'); // read, never written
  return { end: end < 0 ? end : end - outputStart, output: memory.slice(outputStart, outputEnd) };
}

/** decodeLz4Block's answer for the same block: the decoded length, or its error. */
function jsDecode(block: Uint8Array, window: Uint8Array, outputSize: number): { end: number | Lz4BlockError; output: Uint8Array } {
  const out = new Uint8Array(window.length + outputSize);
  out.set(window);
  try {
    return { end: decodeLz4Block(block, 0, block.length, out, window.length, out.length, 0) - window.length, output: out.subarray(window.length) };
  } catch (error) {
    if (error instanceof Lz4BlockError) return { end: error, output: out };
    throw error;
  }
}

describe('the WebAssembly LZ4 block decoder', () => {
  it('decodes what encodeLz4Block makes, with and without the 64 KiB before the block as dictionary', { timeout: 30_000 }, () => {
    const next = random(1);
    for (let round = 0; round < 300; round++) {
      const size = Math.floor(next() * 70_000);
      const windowSize = round % 3 === 0 ? 0 : Math.floor(next() * 65_535);
      const whole = diskLike(windowSize + size, next);
      const block = encodeLz4Block(whole, windowSize, whole.length, 0);
      const { end, output } = wasmDecode(block, whole.subarray(0, windowSize), size);
      expect(end, `round ${round}`).toBe(size);
      expect(Buffer.compare(output, whole.subarray(windowSize))).toBe(0);
    }
  });

  it('runs, patterns, long literals and long matches, next to either end of the output', () => {
    const next = random(2);
    const cases = [new Uint8Array(65_536), new Uint8Array(70_000).map((_, i) => i % 3), new Uint8Array(5000).map(() => next() * 256), diskLike(12, next), diskLike(40, next)];
    for (const data of cases) {
      const block = encodeLz4Block(data);
      const { end, output } = wasmDecode(block, new Uint8Array(0), data.length);
      expect(end).toBe(data.length);
      expect(Buffer.compare(output, data)).toBe(0);
    }
  });

  it('agrees with decodeLz4Block on damaged blocks: the same bytes or a failure, never a write outside the output', { timeout: 30_000 }, () => {
    const next = random(3);
    let failures = 0;
    for (let round = 0; round < 1500; round++) {
      const size = Math.floor(next() * 20_000);
      const windowSize = Math.floor(next() * 20_000);
      const whole = diskLike(windowSize + size, next);
      let block = Uint8Array.from(encodeLz4Block(whole, windowSize, whole.length, 0));
      for (let hits = 1 + Math.floor(next() * 4); hits > 0; hits--) block[Math.floor(next() * block.length)] = next() * 256;
      if (next() < 0.2) block = block.subarray(0, Math.floor(next() * block.length));
      // A smaller output than the block decodes to, now and then: its end must hold.
      const outputSize = next() < 0.2 ? Math.floor(next() * size) : size;
      const window = whole.subarray(0, windowSize);
      const wasm = wasmDecode(block, window, outputSize);
      const js = jsDecode(block, window, outputSize);
      if (js.end instanceof Lz4BlockError) {
        expect(wasm.end, `round ${round}: decodeLz4Block says ${js.end.message}`).toBe(-1);
        failures += 1;
      } else {
        expect(wasm.end, `round ${round}`).toBe(js.end);
        expect(Buffer.compare(wasm.output.subarray(0, js.end), js.output.subarray(0, js.end))).toBe(0);
      }
    }
    // Both kinds of outcome were exercised.
    expect(failures).toBeGreaterThan(100);
    expect(failures).toBeLessThan(1400);
  });

  it('refuses an empty block, an offset of 0, an offset before the window, and a block ending after a match', () => {
    const cases: [string, number[], number][] = [
      ['empty', [], 0],
      ['offset 0', [0x10, 65, 0, 0, 0x00], 16],
      ['offset before the window', [0x10, 65, 2, 0, 0x00], 16],
      ['ends after a match', [0x10, 65, 1, 0], 16],
      ['literals past the input', [0x50, 65, 66], 16],
      ['match past the output', [0x1f, 65, 1, 0, 200, 0x00], 16],
    ];
    for (const [label, bytes, outputSize] of cases) {
      expect(wasmDecode(Uint8Array.from(bytes), new Uint8Array(0), outputSize).end, label).toBe(-1);
      expect(jsDecode(Uint8Array.from(bytes), new Uint8Array(0), outputSize).end, label).toBeInstanceOf(Lz4BlockError);
    }
    // The same match is fine once the window holds its bytes.
    expect(wasmDecode(Uint8Array.from([0x10, 65, 2, 0, 0x00]), Uint8Array.from([7]), 16).end).toBe(5);
  });
});
