/**
 * Gaussian noise for differential privacy.
 *
 * Production noise must come from `cryptoUniform()` (the OS CSPRNG via crypto.getRandomValues): noise from a seeded
 * generator is predictable and protects nothing. `seededUniform(seed)` (xoshiro128**, 53-bit doubles) exists for
 * reproducible tests and benchmarks only. Normals come from the Box-Muller transform on 53-bit uniforms in (0, 1].
 * Like every floating-point Gaussian sampler, this one is subject to the least-significant-bit attacks of Mironov
 * (CCS 2012) in principle; the noise is added to float32 model parameters, which rounds those bits away in practice,
 * but it is not a discrete/secure sampler.
 */
import { webcrypto } from 'node:crypto';

/** A source of uniform doubles in (0, 1]. */
export type UniformSource = () => number;

const TWO_POW_M53 = 2 ** -53;

/** Uniform doubles in (0, 1] from the OS CSPRNG, drawn in batches of 4096 words. */
export function cryptoUniform(): UniformSource {
  const buf = new Uint32Array(4096);
  let i = buf.length;
  const word = (): number => {
    if (i === buf.length) {
      webcrypto.getRandomValues(buf);
      i = 0;
    }
    return buf[i++]!;
  };
  return () => ((word() >>> 5) * 67108864 + (word() >>> 6) + 1) * TWO_POW_M53;
}

/** Uniform doubles in (0, 1] from xoshiro128** seeded by splitmix32 (reproducible; NOT for real privacy). */
export function seededUniform(seed: number): UniformSource {
  let x = seed >>> 0;
  const splitmix = (): number => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let s0 = splitmix();
  let s1 = splitmix();
  let s2 = splitmix();
  let s3 = splitmix();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const next = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 = (s2 ^ s0) >>> 0;
    s3 = (s3 ^ s1) >>> 0;
    s1 = (s1 ^ s2) >>> 0;
    s0 = (s0 ^ s3) >>> 0;
    s2 = (s2 ^ t) >>> 0;
    s3 = rotl(s3, 11);
    return result;
  };
  return () => ((next() >>> 5) * 67108864 + (next() >>> 6) + 1) * TWO_POW_M53;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Standard normal draws (Box-Muller; both outputs of each pair are used). */
export class GaussianSampler {
  private spare = NaN;
  constructor(private readonly uniform: UniformSource = cryptoUniform()) {}

  /** One N(0, 1) draw. */
  next(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform())); // uniform in (0, 1]: log is finite
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Adds N(0, std^2) noise to every element in place. */
  addNoise(values: Float32Array, std: number): void {
    if (!(Number.isFinite(std) && std >= 0)) throw new RangeError(`noise std must be a finite number >= 0, got ${std}`);
    if (std === 0) return;
    for (let i = 0; i < values.length; i++) values[i] = values[i]! + std * this.next();
  }
}
