/**
 * Per-block symmetric quantization: blocks of QUANT_BLOCK values, each [float32 step][levels packed at `bits` bits].
 * A value decodes as q * step with q in [-s, s], s = 2^(bits-1) - 1 (127, 7, 1), step = max|v| / s of its block.
 * `int8` rounds to nearest (today's int8-delta, byte for byte); q8/q4/q2 round stochastically, QSGD-style
 * (Alistarh et al. 2017): q = floor(|v|/step) + Bernoulli(frac), so E[Q(v)] = v and the per-value variance is at most
 * step^2 / 4, which keeps the block within QSGD's min(d/s^2, sqrt(d)/s) ||v||^2.
 */
import { RejectedUpdateError } from '../errors.js';
import type { ByteReader, ByteWriter } from './bytes.js';
import type { EncodeOptions, ValueCodec } from './values.js';

/** Values per block: one float32 step per 1,024 values (0.4% overhead at 8 bits). */
export const QUANT_BLOCK = 1024;

export class QuantCodec implements ValueCodec {
  readonly about: string;
  /** Largest level. */
  readonly s: number;
  /** Levels per byte. */
  private readonly per: number;

  constructor(readonly name: string, readonly bits: 8 | 4 | 2, readonly stochastic: boolean) {
    this.s = 2 ** (bits - 1) - 1;
    this.per = 8 / bits;
    this.about = `${bits}-bit per-block levels (${stochastic ? 'stochastic, unbiased' : 'round to nearest'})`;
  }

  private blockBytes(b: number): number {
    return 4 + Math.ceil(b / this.per);
  }

  bytes(m: number): number {
    const full = Math.floor(m / QUANT_BLOCK);
    const rest = m - full * QUANT_BLOCK;
    return full * this.blockBytes(QUANT_BLOCK) + (rest > 0 ? this.blockBytes(rest) : 0);
  }

  encode(v: Float32Array, w: ByteWriter, o: EncodeOptions): void {
    const { s, bits, per } = this;
    const mask = (1 << bits) - 1;
    const stepPos: number[] = [];
    let sumSq = 0;
    for (let start = 0; start < v.length; start += QUANT_BLOCK) {
      const end = Math.min(v.length, start + QUANT_BLOCK);
      let maxAbs = 0;
      for (let i = start; i < end; i++) maxAbs = Math.max(maxAbs, Math.abs(v[i]!));
      const step = Math.fround(maxAbs / s);
      stepPos.push(w.length);
      w.f32(step);
      const packed = w.reserve(Math.ceil((end - start) / per));
      const inv = step > 0 ? 1 / step : 0;
      let blockSq = 0;
      for (let i = start; i < end; i++) {
        const a = v[i]! * inv;
        let q: number;
        if (this.stochastic) {
          const lo = Math.floor(a);
          q = lo + (o.rng() < a - lo ? 1 : 0);
        } else q = Math.round(a);
        q = Math.max(-s, Math.min(s, q));
        blockSq += q * q;
        const j = i - start;
        // int8 keeps today's two's-complement bytes; narrower levels are stored offset by s.
        const u = bits === 8 ? q & 0xff : q + s;
        packed[Math.floor(j / per)]! |= (u & mask) << ((j % per) * bits);
      }
      sumSq += blockSq * step * step;
    }
    const norm = Math.sqrt(sumSq);
    if (o.maxNorm !== undefined && o.maxNorm > 0 && norm > o.maxNorm) {
      // Shrink every step by the same factor (a hair more, for the float32 rounding of the steps).
      const f = (o.maxNorm / norm) * (1 - 1e-6);
      for (const p of stepPos) w.patchF32(p, (old) => old * f);
    }
  }

  decode(r: ByteReader, out: Float32Array): void {
    const { s, bits, per, name } = this;
    const mask = (1 << bits) - 1;
    for (let start = 0; start < out.length; start += QUANT_BLOCK) {
      const end = Math.min(out.length, start + QUANT_BLOCK);
      const block = start / QUANT_BLOCK;
      const step = r.f32(`${name} block ${block} step`);
      if (!Number.isFinite(step) || step < 0)
        throw new RejectedUpdateError('non_finite', `${name}: block ${block} has step ${step}; steps must be finite and >= 0`);
      const packed = r.take(Math.ceil((end - start) / per), `${name} block ${block} levels`);
      for (let i = start; i < end; i++) {
        const j = i - start;
        const u = (packed[Math.floor(j / per)]! >>> ((j % per) * bits)) & mask;
        const q = bits === 8 ? (u << 24) >> 24 : u - s;
        if (q > s || q < -s) {
          if (bits === 8 && q === -128 && !this.stochastic) {
            // today's int8-delta decoder accepted -128; keep accepting it.
          } else throw new RejectedUpdateError('malformed', `${name}: block ${block} value ${j} has level ${q}, outside [-${s}, ${s}]`);
        }
        out[i] = q * step;
      }
    }
  }
}
