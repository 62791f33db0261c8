/**
 * The standard normal distribution function, for the large-sample Mann-Whitney p-value.
 * Written out here (no stats library): for |z|/√2 < 3 the series
 *   erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·5···(2n+1))
 * has only positive terms (no cancellation), and beyond that the continued fraction
 *   erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + 2/(x + …)))))
 * converges in a few dozen steps. Both are accurate to ~1e-14, far past what a p-value needs.
 */
const SQRT_PI = Math.sqrt(Math.PI);

function erfSeries(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return ((2 / SQRT_PI) * Math.exp(-x * x)) * sum;
}

function erfcContinuedFraction(x: number): number {
  // Evaluated bottom-up from a fixed depth; at x ≥ 3 depth 60 is far more than enough.
  let fraction = x;
  for (let k = 60; k >= 1; k--) fraction = x + k / 2 / fraction;
  return Math.exp(-x * x) / SQRT_PI / fraction;
}

/** erfc(x) for x ≥ 0. */
function erfcPositive(x: number): number {
  return x < 3 ? 1 - erfSeries(x) : erfcContinuedFraction(x);
}

/** P(Z ≤ z) for a standard normal Z. */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  const x = Math.abs(z) / Math.SQRT2;
  const upperTail = erfcPositive(x) / 2; // P(Z > |z|)
  return z < 0 ? upperTail : 1 - upperTail;
}
