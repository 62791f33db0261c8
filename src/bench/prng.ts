/**
 * A small seeded pseudo-random generator (SplitMix32-style mixing of a Weyl sequence), so the
 * bootstrap and the A/A trials give the same numbers on every run and every machine.
 * Math.random() cannot be seeded; statistical quality needed here is modest (resampling
 * indices), and this generator passes that easily.
 */
export type Random = () => number;

export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 0x1_0000_0000;
  };
}

/** A standard normal deviate (Box–Muller), for synthetic samples in tests and benchmarks. */
export function normalDeviate(random: Random): number {
  // 1 - u keeps the logarithm away from 0.
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
