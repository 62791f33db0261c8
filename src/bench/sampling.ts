import { MacvmError } from '../errors.js';
import { normalCdf } from './normal.js';
import { batchRatioInterval, neededForPrecision } from './batch-means.js';

/**
 * When to stop warming up and when to stop measuring, as a small state machine fed one
 * interleaved round (a host sample and a guest sample) at a time. It knows nothing of shells
 * or clocks: run-bench.ts feeds it real rounds and elapsed time, the unit tests feed it
 * synthetic streams from the seeded PRNG.
 *
 * Warm-up ('auto'): a warm-up effect makes the EARLY samples slower (cold caches, JIT, page
 * cache, CPU clocks ramping), i.e. a downward trend at the start of the stream. After each
 * round we look at the last `trendWindow` samples of each side and call the stream settled
 * when, on BOTH sides,
 *   1. a one-sided Mann-Kendall test finds no downward trend at α = 0.10 (rank-based, so one
 *      slow outlier cannot fake or hide a trend the way a least-squares slope can), and
 *   2. the oldest sample of the window is not its strict maximum. Mann-Kendall has little
 *      power against a single slow first sample (the case in issue #14: 33.7 ms, then five at
 *      21.5 ms), while in a stationary window the oldest sample is the maximum with
 *      probability only 1/window — so this rank check catches exactly that case cheaply.
 * Everything before the settled window is warm-up (at least one round, at most `maxWarmup`);
 * the window itself becomes the first measured rounds, so no settled round is thrown away.
 * The discarded rounds are returned (marked), never silently dropped. The α is generous on
 * purpose: warming one round too long costs a round, measuring a trend costs accuracy.
 *
 * Measuring ('auto' rounds): after each block of rounds (one exec per side: one round, or
 * several where batching.ts runs several per exec), once `minRounds` rounds in at least
 * `minBlocks` blocks are in, the guest/host ratio's 95 % CI (the very interval the table
 * reports: batch means over three contiguous batches, batch-means.ts, so a drift of the
 * machine during the run widens it) is computed; its relative half-width
 * (high − low) / 2 / median at or below `precision` ends the run ('precision'). Otherwise the
 * run ends before the next block would overrun `maxTimeMs` ('maxTime'). The interval is not
 * looked at after every block: a spread estimate from a few batches (BATCHES − 1 degrees of
 * freedom) dips below its true value often, and
 * stopping at the first dip (optional stopping) let 95 % intervals cover the truth in only
 * 75–85 % of synthetic runs. It is checked at planned points instead, Stein-style: first
 * after `minRounds`, then, if still too wide, once the rounds have grown to what the
 * interval seen says is needed — n × (half-width / precision)² with a 20 % margin — which
 * kept coverage at 88–92 % on the same streams (the unit tests measure it). Fixed
 * `rounds: N` ends after N measured rounds ('rounds').
 */
export type RoundsSetting = number | 'auto';
export type WarmupSetting = number | 'auto';

export interface SamplingPlan {
  rounds: RoundsSetting;
  warmup: WarmupSetting;
  /** Target relative half-width of the ratio's 95 % CI, e.g. 0.02 (auto rounds). */
  precision: number;
  /** Time budget per workload, ms, warm-up included (auto rounds; a cap on auto warm-up too). */
  maxTimeMs: number;
  /** Measured rounds before the precision check may stop a run (auto rounds). */
  minRounds: number;
  /** Blocks (execs per side) the measured rounds must span before the precision check may stop a run. */
  minBlocks: number;
  /** Samples per side the warm-up trend test looks at. */
  trendWindow: number;
  /** Most rounds auto warm-up may discard. */
  maxWarmup: number;
}

export const SAMPLING_DEFAULTS = {
  rounds: 'auto',
  warmup: 'auto',
  precision: 0.02,
  maxTimeMs: 60_000,
  minRounds: 20,
  minBlocks: 5,
  trendWindow: 6,
  maxWarmup: 10,
} as const satisfies SamplingPlan;

/** How much beyond the planned rounds the next precision check is put (see the module comment). */
export const PLAN_MARGIN = 1.2;

/** α of the warm-up trend test (one-sided). */
export const TREND_ALPHA = 0.1;

export type WarmupEnd = 'fixed' | 'trend' | 'cap';
export type StopReason = 'rounds' | 'precision' | 'maxTime';

export interface SamplingOutcome {
  warmupRounds: number;
  warmupEndedBy: WarmupEnd;
  endedBy: StopReason;
  /** Relative half-width of the ratio's 95 % CI at the end (NaN if never computed). */
  halfWidth: number;
}

/**
 * Mann-Kendall S = Σ_{i<j} sign(x_j − x_i) and the one-sided p-value of a DOWNWARD trend,
 * P(S ≤ s) under "no trend". For n ≤ 40 it is exact: with no ties S = C(n,2) − 2·(inversions
 * of the ranks), and the number of permutations with k inversions follows the Mahonian
 * recurrence. Ties are scored 0 (conservative: ties pull S towards 0). Beyond 40, the normal
 * approximation with Var S = n(n−1)(2n+5)/18 and a continuity correction.
 */
export function mannKendallDown(samples: readonly number[]): { s: number; pValue: number } {
  const n = samples.length;
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += Math.sign(samples[j]! - samples[i]!);
  if (n < 2) return { s, pValue: 1 };
  const pairs = (n * (n - 1)) / 2;
  if (n <= 40) {
    const dist = inversionDistribution(n); // P(inversions = k)
    // S = pairs − 2k, so S ≤ s ⇔ k ≥ (pairs − s) / 2.
    const kMin = Math.ceil((pairs - s) / 2);
    let p = 0;
    for (let k = Math.max(0, kMin); k <= pairs; k++) p += dist[k]!;
    return { s, pValue: Math.min(1, p) };
  }
  const sd = Math.sqrt((n * (n - 1) * (2 * n + 5)) / 18);
  const z = (s + 1) / sd;
  return { s, pValue: Math.min(1, normalCdf(z)) };
}

const inversionCache = new Map<number, Float64Array>();

/** P(a random permutation of n has k inversions), k = 0..C(n,2). */
export function inversionDistribution(n: number): Float64Array {
  const cached = inversionCache.get(n);
  if (cached) return cached;
  let dist = Float64Array.of(1);
  for (let m = 2; m <= n; m++) {
    // Inserting the m-th element adds 0..m−1 inversions, each with probability 1/m.
    const next = new Float64Array(dist.length + m - 1);
    for (let k = 0; k < dist.length; k++) {
      const share = dist[k]! / m;
      for (let add = 0; add < m; add++) next[k + add]! += share;
    }
    dist = next;
  }
  inversionCache.set(n, dist);
  return dist;
}

/** True when a window of one side's samples shows no warm-up effect (see the module comment). */
export function settled(window: readonly number[]): boolean {
  const oldest = window[0]!;
  const oldestIsMax = window.slice(1).every((x) => x < oldest);
  return !oldestIsMax && mannKendallDown(window).pValue >= TREND_ALPHA;
}

/** The relative half-width of the ratio's 95 % CI (batch means, batch-means.ts): (high − low) / 2 / median. */
export function ratioHalfWidth(host: readonly number[], guest: readonly number[], blocks?: readonly number[]): number {
  const ratio = batchRatioInterval(host, guest, blocks);
  return (ratio.ciHigh - ratio.ciLow) / 2 / ratio.median;
}

export class RoundSampler {
  readonly host: number[] = [];
  readonly guest: number[] = [];
  /** The block (exec) each round came from. */
  readonly blocks: number[] = [];
  private warmupRounds: number | undefined;
  private warmupEndedBy: WarmupEnd | undefined;
  private outcome: SamplingOutcome | undefined;
  private halfWidth = Number.NaN;
  private blockCount = 0;
  /** Measured rounds at which the precision is looked at next (auto rounds). */
  private nextCheck: number;

  constructor(readonly plan: SamplingPlan) {
    if (plan.warmup !== 'auto' && plan.warmup === 0) this.endWarmup(0, 'fixed');
    this.nextCheck = plan.minRounds;
  }

  get warmingUp(): boolean {
    return this.warmupRounds === undefined;
  }

  /** Measured rounds so far (0 while warming up). */
  get measured(): number {
    return this.warmupRounds === undefined ? 0 : this.host.length - this.warmupRounds;
  }

  /** Rounds still wanted before a fixed count is reached (Infinity for auto rounds), warm-up not counted. */
  get roundsLeft(): number {
    return this.plan.rounds === 'auto' ? Number.POSITIVE_INFINITY : Math.max(0, this.plan.rounds - this.measured);
  }

  /**
   * Adds one interleaved round, a block of its own. `elapsedMs` is the time since the
   * workload's first round started, `roundMs` how long this round took (to judge whether
   * another one fits the budget). Returns the outcome when the run should stop, undefined to go on.
   */
  add(host: number, guest: number, elapsedMs: number, roundMs: number): SamplingOutcome | undefined {
    return this.addBlock([host], [guest], elapsedMs, roundMs);
  }

  /**
   * Adds the rounds of one block — the k rounds each side ran in one exec, round i of the
   * host paired with round i of the guest. `nextBlockMs` is what the next block is expected
   * to take. Warm-up is judged round by round; the stopping rule once per block. Rounds past
   * a fixed count are not kept.
   */
  addBlock(hosts: readonly number[], guests: readonly number[], elapsedMs: number, nextBlockMs: number): SamplingOutcome | undefined {
    if (this.outcome) return this.outcome;
    if (hosts.length !== guests.length || hosts.length === 0) {
      throw new MacvmError('MACVM_BENCH_INVALID', `A block needs as many host rounds as guest rounds, at least one (host ${hosts.length}, guest ${guests.length}).`);
    }
    const block = this.blockCount++;
    const plan = this.plan;
    for (let i = 0; i < hosts.length; i++) {
      this.host.push(hosts[i]!);
      this.guest.push(guests[i]!);
      this.blocks.push(block);
      if (this.warmupRounds === undefined) this.judgeWarmup(elapsedMs, nextBlockMs);
      if (this.warmupRounds === undefined) continue;
      // Fixed rounds: a settled window longer than the rounds asked for gives its oldest to warm-up.
      if (plan.rounds !== 'auto' && this.measured > plan.rounds) this.warmupRounds = this.host.length - plan.rounds;
      if (plan.rounds !== 'auto' && this.measured >= plan.rounds) return (this.outcome = this.stopReason(elapsedMs, nextBlockMs));
    }
    if (this.warmupRounds === undefined) return undefined;
    return (this.outcome = this.stopReason(elapsedMs, nextBlockMs));
  }

  private judgeWarmup(elapsedMs: number, nextBlockMs: number): void {
    const plan = this.plan;
    const count = this.host.length;
    if (plan.warmup !== 'auto') {
      if (count >= plan.warmup) this.endWarmup(plan.warmup, 'fixed');
    } else if (count > plan.trendWindow && settled(this.host.slice(-plan.trendWindow)) && settled(this.guest.slice(-plan.trendWindow))) {
      this.endWarmup(count - plan.trendWindow, 'trend');
    } else if (count - plan.trendWindow >= plan.maxWarmup || (plan.rounds === 'auto' && elapsedMs + nextBlockMs > plan.maxTimeMs / 2)) {
      // Still trending after the cap (or half the budget): measure anyway, and say so.
      this.endWarmup(Math.max(1, Math.min(plan.maxWarmup, count - 1)), 'cap');
    }
  }

  private endWarmup(rounds: number, by: WarmupEnd): void {
    this.warmupRounds = rounds;
    this.warmupEndedBy = by;
  }

  private stopReason(elapsedMs: number, nextBlockMs: number): SamplingOutcome | undefined {
    const plan = this.plan;
    const n = this.measured;
    const done = (endedBy: StopReason): SamplingOutcome => {
      // On every round kept: a half-width from an earlier check would understate what is known.
      if (n > 0) this.halfWidth = this.currentHalfWidth();
      return { warmupRounds: this.warmupRounds!, warmupEndedBy: this.warmupEndedBy!, endedBy, halfWidth: this.halfWidth };
    };
    if (plan.rounds !== 'auto') return n >= plan.rounds ? done('rounds') : undefined;
    if (n >= this.nextCheck && new Set(this.measuredBlocks()).size >= plan.minBlocks) {
      this.halfWidth = this.currentHalfWidth();
      if (this.halfWidth <= plan.precision) return done('precision');
      // The rounds this interval says are needed, with a margin.
      const rounds = neededForPrecision(n, this.halfWidth, plan.precision);
      const needed = rounds === undefined ? n * 2 : Math.ceil(rounds * PLAN_MARGIN);
      this.nextCheck = Math.max(n + 1, Math.min(needed, Number.MAX_SAFE_INTEGER));
    }
    if (n > 0 && elapsedMs + nextBlockMs > plan.maxTimeMs) return done('maxTime');
    return undefined;
  }

  private currentHalfWidth(): number {
    return ratioHalfWidth(this.measuredSamples('host'), this.measuredSamples('guest'), this.measuredBlocks());
  }

  /** The measured (post-warm-up) samples of one side. */
  measuredSamples(side: 'host' | 'guest'): number[] {
    return this[side].slice(this.warmupRounds ?? this[side].length);
  }

  /** The block of each measured round. */
  measuredBlocks(): number[] {
    return this.blocks.slice(this.warmupRounds ?? this.blocks.length);
  }

  /** The discarded warm-up samples of one side. */
  warmupSamples(side: 'host' | 'guest'): number[] {
    return this[side].slice(0, this.warmupRounds ?? this[side].length);
  }
}
