import { MacvmError } from '../errors.js';

/**
 * Student's t distribution and Welch's two-sample t test, written out here (no stats
 * library), for the baseline comparison on batch means (compare.ts).
 *
 * The two-sided p-value of t with ν degrees of freedom is the regularized incomplete beta
 * function I_x(ν/2, ½) at x = ν/(ν + t²). I_x(a, b) is evaluated from its continued fraction
 * (modified Lentz), on the side of the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where that
 * fraction converges fast, and ln Γ from the Lanczos series (g = 7, nine terms: ~1e-15
 * relative), far past what a p-value needs.
 */

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The continued fraction of I_x(a, b), for x < (a + 1)/(a + b + 2). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const even = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 + even * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + even / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    const odd = (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + odd * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + odd / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), 0 ≤ x ≤ 1, a, b > 0. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(x, a, b)) / a : 1 - (front * betaFraction(1 - x, b, a)) / b;
}

/** Two-sided p-value of a t statistic with `df` degrees of freedom (df may be fractional, as Welch's is). */
export function studentTwoSidedP(t: number, df: number): number {
  if (!(df > 0)) throw new MacvmError('MACVM_BAD_ARGUMENT', `A t test needs degrees of freedom > 0, got ${df}.`);
  if (!Number.isFinite(t)) return Number.isNaN(t) ? 1 : 0;
  return incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

export interface WelchResult {
  t: number;
  df: number;
  pValue: number;
}

/**
 * Welch's t test of equal means, two-sided, for samples whose variances may differ: R's
 * t.test(x, y) (var.equal = FALSE). Both samples need at least two values. Two samples with
 * no spread at all give p = 1 when their means agree and p = 0 when they do not.
 */
export function welchTest(x: readonly number[], y: readonly number[]): WelchResult {
  if (x.length < 2 || y.length < 2) {
    throw new MacvmError('MACVM_BAD_ARGUMENT', `Welch's t test needs at least two values per sample (got ${x.length} and ${y.length}).`);
  }
  const stats = (s: readonly number[]) => {
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    const variance = s.reduce((a, b) => a + (b - mean) ** 2, 0) / (s.length - 1);
    return { mean, perN: variance / s.length, n: s.length };
  };
  const a = stats(x);
  const b = stats(y);
  const se2 = a.perN + b.perN;
  if (se2 === 0) return { t: a.mean === b.mean ? 0 : Math.sign(a.mean - b.mean) * Infinity, df: a.n + b.n - 2, pValue: a.mean === b.mean ? 1 : 0 };
  const t = (a.mean - b.mean) / Math.sqrt(se2);
  const df = se2 ** 2 / (a.perN ** 2 / (a.n - 1) + b.perN ** 2 / (b.n - 1));
  return { t, df, pValue: studentTwoSidedP(t, df) };
}
