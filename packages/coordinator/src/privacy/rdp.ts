/**
 * Renyi differential privacy of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019,
 * "Renyi Differential Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530), add/remove-one adjacency.
 *
 * One step: every member of the population is included independently with probability q, the included
 * contributions (each of L2 norm <= S) are summed and N(0, (z S)^2) noise is added per coordinate. Its RDP at order
 * alpha > 1 is log(A_alpha) / (alpha - 1) with A_alpha = E_{x~mu0}[((1 - q) + q mu1(x)/mu0(x))^alpha],
 * mu0 = N(0, z^2), mu1 = N(1, z^2). Integer orders use the binomial expansion (Section 3.3), fractional orders the
 * two-sided series split at z0 (Section 3.2). Everything is computed in log space; RDP composes by addition.
 */
import { logAdd, logErfc, logSub } from './special.js';

/**
 * Orders evaluated when the caller gives none: 1.1 to 10.9 in steps of 0.1 and 11 to 63 (Opacus' DEFAULT_ALPHAS
 * from 12; TensorFlow Privacy and dp_accounting use similar grids) plus 64, 128, 256, 512 and 1024 for tiny epsilons.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  64,
  128,
  256,
  512,
  1024,
]);

/** log(A_alpha) for integer alpha >= 2 and 0 < q < 1. */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logA = -Infinity;
  let logComb = 0; // log C(alpha, i), updated as C(alpha, i + 1) = C(alpha, i) (alpha - i) / (i + 1)
  for (let i = 0; i <= alpha; i++) {
    const s = logComb + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
    logComb += Math.log((alpha - i) / (i + 1));
  }
  return logA;
}

/** log(A_alpha) for fractional alpha > 1 and 0 < q < 1. */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let logAbsCoef = 0; // log |binom(alpha, i)|, generalized binomial coefficient
  let coefPositive = true;
  for (let i = 0; ; i++) {
    const j = alpha - i;
    const logT0 = logAbsCoef + i * logQ + j * log1mQ;
    const logT1 = logAbsCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (coefPositive) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 1_000_000) throw new RangeError(`RDP series did not converge (q=${q}, noise multiplier=${sigma}, order=${alpha})`);
    const ratio = (alpha - i) / (i + 1);
    logAbsCoef += Math.log(Math.abs(ratio));
    if (ratio < 0) coefPositive = !coefPositive;
  }
  return logAdd(logA0, logA1);
}

/** log(A_alpha) of the sampled Gaussian mechanism, 0 < q < 1, alpha > 1. */
export function logA(q: number, noiseMultiplier: number, alpha: number): number {
  return Number.isInteger(alpha) ? logAInt(q, noiseMultiplier, alpha) : logAFrac(q, noiseMultiplier, alpha);
}

/** RDP of one step of the Poisson-subsampled Gaussian mechanism at one order (may be Infinity). */
export function rdpOneStep(q: number, noiseMultiplier: number, alpha: number): number {
  if (!(alpha >= 1)) throw new RangeError(`RDP order must be at least 1, got ${alpha}`);
  if (q === 0) return 0;
  if (alpha === Infinity || noiseMultiplier === 0) return Infinity;
  if (q === 1) return alpha / (2 * noiseMultiplier * noiseMultiplier);
  if (alpha === 1) throw new RangeError('RDP order 1 of the subsampled Gaussian is not supported; use orders greater than 1');
  return logA(q, noiseMultiplier, alpha) / (alpha - 1);
}

/** RDP of `steps` compositions of the Poisson-subsampled Gaussian mechanism, one value per order. */
export function computeRdp(q: number, noiseMultiplier: number, steps: number, orders: readonly number[]): number[] {
  return orders.map((a) => {
    const r = rdpOneStep(q, noiseMultiplier, a);
    return r === 0 ? 0 : r * steps;
  });
}

/**
 * Effective noise multiplier of several Gaussian queries released together on the same sample: their RDP is that of
 * one Gaussian with z = (sum z_i^-2)^(-1/2) (used to account for adaptive clipping's noisy quantile count).
 */
export function combinedNoiseMultiplier(multipliers: readonly number[]): number {
  const s = multipliers.reduce((acc, z) => acc + 1 / (z * z), 0);
  return s === 0 ? Infinity : 1 / Math.sqrt(s);
}
