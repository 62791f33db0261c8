import { MacvmError } from '../errors.js';
import { normalCdf } from './normal.js';

/**
 * The Mann-Whitney U test (Wilcoxon rank-sum), two-sided, written out here, matching what
 * R's wilcox.test(x, y) reports:
 * - U is the statistic of x: U = R_x − n_x(n_x+1)/2, where R_x is the sum of x's ranks in the
 *   pooled sample and tied values share the mean of their ranks (R calls it W).
 * - With no ties and both samples under 50, the p-value comes from the EXACT null
 *   distribution of U (every split of the pooled ranks equally likely).
 * - Otherwise from the normal approximation with the tie-corrected variance
 *     σ² = n_x·n_y/12 · ((N+1) − Σ(t³−t) / (N(N−1)))   (t = size of each tie group)
 *   and a continuity correction of ½ towards the mean.
 * - All values equal (σ = 0): nothing separates the samples, p = 1 (not 0/0).
 */
export interface MannWhitneyResult {
  /** U of the first sample (R's W). */
  u: number;
  /** Two-sided p-value. */
  pValue: number;
  method: 'exact' | 'normal' | 'all-equal';
  /** The smallest two-sided p-value any data of these sizes could give (total separation). */
  minPossiblePValue: number;
  /**
   * True when even total separation cannot reach p < alpha, i.e. the samples are too small to
   * ever call a difference (e.g. 3 vs 3: the best possible p is 2/C(6,3) = 0.1).
   */
  tooFewSamples: boolean;
  /** True when at least two values in the pooled sample are equal. */
  ties: boolean;
}

export const DEFAULT_ALPHA = 0.05;
const EXACT_LIMIT = 50;

/** Mid-ranks (1-based) of the pooled sample, and the sizes of its tie groups. */
export function midRanks(values: readonly number[]): { ranks: number[]; tieSizes: number[] } {
  const order = values.map((value, index) => ({ value, index })).sort((a, b) => a.value - b.value);
  const ranks = new Array<number>(values.length);
  const tieSizes: number[] = [];
  for (let start = 0; start < order.length; ) {
    let end = start + 1;
    while (end < order.length && order[end]!.value === order[start]!.value) end++;
    // Positions start..end-1 hold ranks start+1..end; each gets their mean.
    const shared = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]!.index] = shared;
    if (end - start > 1) tieSizes.push(end - start);
    start = end;
  }
  return { ranks, tieSizes };
}

/**
 * The exact null distribution of U for sample sizes (m, n), as probabilities P(U = u),
 * u = 0..m·n. Recurrence on the largest pooled value: it belongs to the first sample with
 * probability m/(m+n), and then beats all n values of the second (adding n to U):
 *   P_{m,n}(u) = m/(m+n) · P_{m−1,n}(u−n) + n/(m+n) · P_{m,n−1}(u),   P_{0,n} = P_{m,0} = [1].
 * Working in probabilities rather than counts keeps C(98, 49) ≈ 2.5e28 out of the numbers.
 */
export function exactUDistribution(m: number, n: number): Float64Array {
  // previous[j] = P_{i−1, j}, current[j] = P_{i, j}
  let previous: Float64Array[] = [];
  for (let j = 0; j <= n; j++) previous.push(Float64Array.of(1));
  for (let i = 1; i <= m; i++) {
    const current: Float64Array[] = [Float64Array.of(1)];
    for (let j = 1; j <= n; j++) {
      const dist = new Float64Array(i * j + 1);
      const fromFirst = previous[j]!; // P_{i−1, j}, support 0..(i−1)·j
      const fromSecond = current[j - 1]!; // P_{i, j−1}, support 0..i·(j−1)
      const a = i / (i + j);
      const b = j / (i + j);
      for (let u = 0; u < fromFirst.length; u++) dist[u + j]! += a * fromFirst[u]!;
      for (let u = 0; u < fromSecond.length; u++) dist[u]! += b * fromSecond[u]!;
      current.push(dist);
    }
    previous = current;
  }
  return previous[n]!;
}

/** The two-sided p-value of total separation: 2 / C(m+n, m), capped at 1. */
export function minTwoSidedPValue(m: number, n: number): number {
  // 1 / C(m+n, m) as a running product, which never overflows.
  let inverse = 1;
  for (let k = 1; k <= m; k++) inverse *= k / (n + k);
  return Math.min(1, 2 * inverse);
}

export function mannWhitneyU(x: readonly number[], y: readonly number[], alpha = DEFAULT_ALPHA): MannWhitneyResult {
  const m = x.length;
  const n = y.length;
  if (m === 0 || n === 0) {
    throw new MacvmError('MACVM_BENCH_INVALID', `The Mann-Whitney test needs samples on both sides (got ${m} and ${n}).`);
  }
  for (const v of [...x, ...y]) {
    if (!Number.isFinite(v)) throw new MacvmError('MACVM_BENCH_INVALID', `A sample given to the Mann-Whitney test is not a finite number (${v}).`);
  }
  const { ranks, tieSizes } = midRanks([...x, ...y]);
  let rankSumX = 0;
  for (let i = 0; i < m; i++) rankSumX += ranks[i]!;
  const u = rankSumX - (m * (m + 1)) / 2;
  const minPossiblePValue = minTwoSidedPValue(m, n);
  const base = { u, minPossiblePValue, tooFewSamples: minPossiblePValue >= alpha, ties: tieSizes.length > 0 };

  if (tieSizes.length === 0 && m < EXACT_LIMIT && n < EXACT_LIMIT) {
    const dist = exactUDistribution(m, n);
    // U is an integer here (no ties); sum each tail including u itself.
    let lower = 0;
    for (let k = 0; k <= u; k++) lower += dist[k]!;
    let upper = 0;
    for (let k = u; k < dist.length; k++) upper += dist[k]!;
    return { ...base, pValue: Math.min(1, 2 * Math.min(lower, upper)), method: 'exact' };
  }

  const total = m + n;
  const tieTerm = tieSizes.reduce((sum, t) => sum + (t * t * t - t), 0) / (total * (total - 1));
  const variance = ((m * n) / 12) * (total + 1 - tieTerm);
  if (!(variance > 0)) return { ...base, pValue: 1, method: 'all-equal' };
  const deviation = u - (m * n) / 2;
  const corrected = deviation - Math.sign(deviation) * 0.5;
  const z = corrected / Math.sqrt(variance);
  // 2·min(Φ(z), Φ(−z)) = 2·Φ(−|z|); with |deviation| < ½ the correction overshoots to the
  // other side, so cap at 1 as R does.
  return { ...base, pValue: Math.min(1, 2 * normalCdf(-Math.abs(z))), method: 'normal' };
}
