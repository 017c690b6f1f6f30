/** Weighted updates onto the integer grid of Z_{2^bits} and back: clipping, stochastic rounding, the no-wrap bound. */
import { randomBytes } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { quantLevels, type SecAggParams } from './params.js';
import { PRG_CHUNK, prgStream } from './prg.js';

export type Rounding = 'stochastic' | 'nearest';

/**
 * Writes the quantized vector [q(p * x_1) ... q(p * x_m) | q(p)] into `out` (length m + 1), p = min(weight,
 * maxWeight) / maxWeight in [0, 1]. Each coordinate is clipped to [-c, c] first, so p * x is in [-c, c] and maps to
 * 0..L (L = quantLevels): q = round((p * x + c) * L / 2c). The weight maps to round(p * L). Any sum of at most nAgents
 * such vectors is at most nAgents * L <= 2^bits - 1: it never wraps, so the masked sum decodes exactly.
 * Stochastic rounding (default) is unbiased, so quantization error averages out over rounds instead of drifting.
 */
export function quantizeInto(out: Uint32Array, update: Float32Array, weight: number, params: SecAggParams, rounding: Rounding = 'stochastic'): void {
  const m = update.length;
  if (out.length !== m + 1) throw new RangeError(`quantize: out has ${out.length} slots, need update length + 1 = ${m + 1}`);
  if (!(weight >= 0) || !Number.isFinite(weight)) throw new ValidationError(`secagg weight: need a finite number >= 0, got ${weight}`);
  const L = quantLevels(params);
  const c = params.clipRange;
  const p = Math.min(weight, params.maxWeight) / params.maxWeight;
  const scale = L / (2 * c);
  const rnd = rounding === 'stochastic' ? prgStream(new Uint8Array(randomBytes(32))) : undefined;
  const INV32 = 1 / 4294967296;
  for (let o = 0; o < m; o += PRG_CHUNK) {
    const len = Math.min(PRG_CHUNK, m - o);
    const u = rnd?.next(len);
    for (let i = 0; i < len; i++) {
      let x = update[o + i]!;
      if (x !== x) throw new ValidationError(`secagg update: coordinate ${o + i} is NaN`);
      x = x > c ? c : x < -c ? -c : x;
      const v = (p * x + c) * scale;
      const q = Math.floor(v + (u ? u[i]! * INV32 : 0.5));
      out[o + i] = q > L ? L : q;
    }
  }
  const uw = rounding === 'stochastic' ? rnd!.next(1)[0]! * INV32 : 0.5;
  out[m] = Math.min(L, Math.floor(p * L + uw));
}

export interface Dequantized {
  /** sum(w_i x_i) in the caller's units. */
  weightedSum: Float32Array;
  /** sum(w_i). */
  weightSum: number;
  /** weightedSum / weightSum (zeros when no weight was summed). */
  mean: Float32Array;
}

/** Decodes the unmasked sum of `count` quantized vectors (values already reduced mod 2^bits). */
export function dequantizeSum(sum: Uint32Array, count: number, params: SecAggParams): Dequantized {
  const m = sum.length - 1;
  const L = quantLevels(params);
  const c = params.clipRange;
  const W = params.maxWeight;
  const step = (2 * c) / L;
  const weightSum = (sum[m]! / L) * W;
  const weightedSum = new Float32Array(m);
  const mean = new Float32Array(m);
  const inv = weightSum > 0 ? 1 / weightSum : 0;
  for (let i = 0; i < m; i++) {
    const ws = (sum[i]! * step - count * c) * W;
    weightedSum[i] = ws;
    mean[i] = ws * inv;
  }
  return { weightedSum, weightSum, mean };
}

/**
 * Worst-case |error| per coordinate of the decoded sums of `count` inputs: each input is off by less than one grid
 * step (stochastic) or half of one (nearest). weightedSum's step is 2c * maxWeight / L, weightSum's maxWeight / L.
 */
export function quantizationBound(params: SecAggParams, count: number, rounding: Rounding = 'stochastic'): { weightedSum: number; weightSum: number } {
  const L = quantLevels(params);
  const f = rounding === 'stochastic' ? 1 : 0.5;
  return { weightedSum: (count * f * 2 * params.clipRange * params.maxWeight) / L, weightSum: (count * f * params.maxWeight) / L };
}
