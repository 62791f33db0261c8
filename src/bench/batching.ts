/**
 * How many rounds one exec runs on each side. Every exec has a cost that is not the
 * workload's: on the guest an SSH channel, a shell, for a JS function a node process start
 * (1–2 s under TCG, and a fresh JIT) — time the budget pays for without a sample. Running k
 * rounds per exec pays it once for k samples. The price: the k rounds of one exec share a
 * process and a moment, so they are not k independent samples; the CI keeps them in one
 * batch (batch-means.ts) and the stopping rule wants enough blocks (sampling.ts `minBlocks`).
 *
 * So k is the smallest number that brings the overhead down to about OVERHEAD_SHARE of an
 * exec, measured from the exec before: a shell loop of ~1 s with ~0.2 s of SSH around it
 * runs 1–2 per exec; a JS function (a 0.6 s tinybench round after a 1.8 s node start) the
 * most, MAX_ROUNDS_PER_EXEC. Never more than the rounds still wanted, nor than the time left.
 */
export const OVERHEAD_SHARE = 0.2;
export const MAX_ROUNDS_PER_EXEC = 5;

/** What one block (an exec per side) took, as the runner saw it. */
export interface BlockTiming {
  /** Rounds each side ran. */
  rounds: number;
  /** Wall time of the guest's exec as the host saw it (SSH round trip included), ms. */
  guestExecMs: number;
  /** The guest rounds' own wall time inside it, summed, ms. */
  guestRoundsMs: number;
  /** The same two for the host. */
  hostExecMs: number;
  hostRoundsMs: number;
}

/** Rounds per exec for the next block. `roundsLeft`/`timeLeftMs`: Infinity when unbounded. */
export function roundsPerExec(last: BlockTiming, roundsLeft: number, timeLeftMs: number): number {
  const perRound = last.guestRoundsMs / last.rounds;
  const overhead = Math.max(0, last.guestExecMs - last.guestRoundsMs);
  let k = perRound > 0 ? Math.ceil(overhead / (OVERHEAD_SHARE * perRound)) : MAX_ROUNDS_PER_EXEC;
  k = Math.min(k, MAX_ROUNDS_PER_EXEC, roundsLeft);
  // What fits in the time left (a block that cannot fit is still one round: the sampler decides to stop).
  const both = perRoundBothSides(last);
  if (both > 0 && Number.isFinite(timeLeftMs)) k = Math.min(k, Math.floor((timeLeftMs - overheadBothSides(last)) / both));
  return Math.max(1, k);
}

/** What a block of `rounds` rounds is expected to take, both sides, from the last one. */
export function expectedBlockMs(last: BlockTiming, rounds: number): number {
  return overheadBothSides(last) + rounds * perRoundBothSides(last);
}

function perRoundBothSides(last: BlockTiming): number {
  return (last.guestRoundsMs + last.hostRoundsMs) / last.rounds;
}

function overheadBothSides(last: BlockTiming): number {
  return Math.max(0, last.guestExecMs - last.guestRoundsMs) + Math.max(0, last.hostExecMs - last.hostRoundsMs);
}
