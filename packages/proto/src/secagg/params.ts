/** Secure aggregation parameters: SecAgg+ neighborhood size and threshold derived from n, and the quantization grid. */
import { ValidationError } from '../errors.js';

/** What every agent and the coordinator of one round must agree on. */
export interface SecAggParams {
  /** Most agents whose inputs can be summed in the round (the roster size): sets the grid so the sum never wraps. */
  nAgents: number;
  /** t: shares needed to rebuild an agent's secret, out of its neighbors + 1 holders (itself included). */
  threshold: number;
  /** k: neighbors per agent on the round's graph (n - 1: complete graph, original SecAgg). */
  neighbors: number;
  /** Masked values live in Z_{2^bits}, 1 <= bits <= 32 (a Uint32Array either way; maskedToBytes packs 8/16-bit rings). */
  bits: number;
  /** Weights (example counts) are capped to [0, maxWeight]: the weight slot's sum must fit the ring too. */
  maxWeight: number;
  /** c: every coordinate of an update is clipped to [-c, c] before quantization. */
  clipRange: number;
  /**
   * L, the grid of one agent's value (0..L), when fixed rather than taken from the ring: int8 mode sets L = 255 and
   * derives bits from it (int8RingBits). Absent: L = floor((2^bits - 1) / nAgents), the finest grid the ring holds.
   */
  levels?: number | undefined;
}

export interface SecAggParamsOptions {
  threshold?: number;
  neighbors?: number;
  bits?: number;
  maxWeight?: number;
  clipRange?: number;
  /** 'int8': each agent's value on a 0..255 grid and the smallest ring that sums nAgents of them (ringBitsFor). */
  quantization?: 'int8' | undefined;
  /** Dropout rate the defaults are sized for (default 0.3). */
  dropoutRate?: number;
  /** Accepted chance that some agent's neighborhood has fewer than t live holders (default 0.01). */
  failureProbability?: number;
}

/** P[Binomial(n, p) < t], summed in log space (n is at most a few hundred here). */
function binomialBelow(n: number, p: number, t: number): number {
  let logC = 0; // log C(n, 0)
  let s = 0;
  for (let x = 0; x < t && x <= n; x++) {
    if (x > 0) logC += Math.log((n - x + 1) / x);
    s += Math.exp(logC + x * Math.log(p) + (n - x) * Math.log1p(-p));
  }
  return s;
}

/** Strict majority of the k + 1 holders. */
export function majorityThreshold(neighbors: number): number {
  return Math.floor((neighbors + 1) / 2) + 1;
}

/**
 * Defaults as SecAgg+ (Bell et al. 2020) derives them from n:
 * - threshold t = strict majority of the k + 1 holders of each secret. Then a coordinator that lies about who dropped
 *   cannot collect t b-shares and t s-key shares of one agent from disjoint holders (two majorities always share an
 *   honest holder, who refuses to reveal both), and up to t - 1 colluding holders learn nothing.
 * - neighbors k = the smallest even k with n * P[Binomial(k + 1, 1 - dropoutRate) < t] <= failureProbability (union
 *   bound over agents that some neighborhood cannot rebuild a secret), capped at n - 1 (complete graph). This grows
 *   like log n: with dropoutRate 0.3, n = 100 -> k = 78, n = 1,000 -> 104, n = 10,000 -> 130; with 0.1, n = 10,000 -> 22.
 * - bits 32, maxWeight 100,000 examples, clipRange 1.
 * - quantization 'int8': levels 255 and bits = ringBitsFor(nAgents, 255) (12 bits for 10 agents).
 */
export function secaggParams(nAgents: number, opts: SecAggParamsOptions = {}): SecAggParams {
  if (!Number.isInteger(nAgents) || nAgents < 2) throw new ValidationError(`secagg nAgents: need a whole number >= 2, got ${nAgents}`);
  const delta = opts.dropoutRate ?? 0.3;
  const eta = opts.failureProbability ?? 0.01;
  if (!(delta >= 0 && delta < 1)) throw new ValidationError(`secagg dropoutRate: must be in [0, 1), got ${delta}`);
  let k = opts.neighbors;
  if (k === undefined) {
    k = nAgents - 1;
    for (let c = 2; c < nAgents - 1; c += 2) {
      if (nAgents * binomialBelow(c + 1, 1 - delta, majorityThreshold(c)) <= eta) {
        k = c;
        break;
      }
    }
  }
  const params: SecAggParams = {
    nAgents,
    neighbors: Math.min(k, nAgents - 1),
    threshold: opts.threshold ?? Math.min(majorityThreshold(Math.min(k, nAgents - 1)), nAgents),
    bits: opts.bits ?? (opts.quantization === 'int8' ? ringBitsFor(nAgents, INT8_LEVELS) : 32),
    maxWeight: opts.maxWeight ?? 100_000,
    clipRange: opts.clipRange ?? 1,
    ...(opts.quantization === 'int8' ? { levels: INT8_LEVELS } : {}),
  };
  checkParams(params);
  return params;
}

/** Refuses parameters that cannot work, naming the field and the fix. */
export function checkParams(p: SecAggParams): void {
  const bad = (m: string): never => {
    throw new ValidationError(`secagg params: ${m}`);
  };
  if (!Number.isInteger(p.nAgents) || p.nAgents < 2) bad(`nAgents ${p.nAgents}: need a whole number >= 2`);
  if (!Number.isInteger(p.neighbors) || p.neighbors < 1 || p.neighbors > p.nAgents - 1) bad(`neighbors ${p.neighbors}: need 1..nAgents - 1 (${p.nAgents - 1})`);
  if (!Number.isInteger(p.threshold) || p.threshold < 2 || p.threshold > p.neighbors + 1)
    bad(`threshold ${p.threshold}: need 2..neighbors + 1 (${p.neighbors + 1}): a secret has neighbors + 1 holders`);
  if (!Number.isInteger(p.bits) || p.bits < 1 || p.bits > 32) bad(`bits ${p.bits}: need 1..32`);
  if (!(p.maxWeight > 0 && Number.isFinite(p.maxWeight))) bad(`maxWeight ${p.maxWeight}: need a finite number > 0`);
  if (!(p.clipRange > 0 && Number.isFinite(p.clipRange))) bad(`clipRange ${p.clipRange}: need a finite number > 0`);
  if (p.levels !== undefined) {
    if (!Number.isInteger(p.levels) || p.levels < 1) bad(`levels ${p.levels}: need a whole number >= 1`);
    if (p.nAgents * p.levels > 2 ** p.bits - 1)
      bad(`levels ${p.levels} x ${p.nAgents} agents = ${p.nAgents * p.levels} does not fit Z_2^${p.bits} (sums would wrap): need bits >= ${ringBitsFor(p.nAgents, p.levels)}`);
  }
  if (quantLevels(p) < 2) bad(`bits ${p.bits} leave fewer than 2 levels for ${p.nAgents} agents: raise bits`);
}

/**
 * L: the largest quantized value of one coordinate (grid 0..L). A sum over at most nAgents inputs is at most
 * nAgents * L <= 2^bits - 1, so it never wraps: L = floor((2^bits - 1) / nAgents).
 */
export function quantLevels(p: Pick<SecAggParams, 'bits' | 'nAgents' | 'levels'>): number {
  return p.levels ?? Math.floor((2 ** p.bits - 1) / p.nAgents);
}

/** int8 mode's grid: 256 values 0..255 per coordinate, as an int8 codec's levels (the scale is fixed by clipRange). */
export const INT8_LEVELS = 255;

/**
 * The smallest ring that holds the sum of nAgents values of 0..levels without wrapping: 2^bits - 1 >= nAgents * levels,
 * so bits = ceil(log2(nAgents * levels + 1)). Weighting costs no extra bits: an agent quantizes p * x with
 * p = min(w, maxWeight) / maxWeight <= 1 on the same grid (quantize.ts), and its weight slot round(p * levels) is in
 * 0..levels too. With levels 255: 2 agents -> 9 bits, 8 -> 11, 10 -> 12, 100 -> 15, 1,000 -> 18, 10,000 -> 22.
 */
export function ringBitsFor(nAgents: number, levels: number): number {
  let bits = Math.max(1, Math.ceil(Math.log2(nAgents * levels + 1)));
  // Guard log2's rounding near powers of two: the inequality itself decides.
  while (2 ** bits - 1 < nAgents * levels) bits++;
  while (bits > 1 && 2 ** (bits - 1) - 1 >= nAgents * levels) bits--;
  return bits;
}
