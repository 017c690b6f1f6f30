import { describe, expect, it } from 'vitest';
import { GaussianSampler, cryptoUniform, seededUniform } from './gaussian.js';

/** Standard normal CDF by Simpson integration of the density from -10 (2000 panels; error far below the KS bound). */
function normalCdf(x: number): number {
  const n = 2000;
  const lo = -10;
  if (x <= lo) return 0;
  const h = (x - lo) / n;
  const f = (t: number): number => Math.exp(-0.5 * t * t) / Math.sqrt(2 * Math.PI);
  let s = f(lo) + f(x);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * f(lo + i * h);
  return (s * h) / 3;
}

describe('uniform sources', () => {
  it('seeded streams are reproducible, distinct per seed, and in (0, 1]', () => {
    const a = seededUniform(7);
    const b = seededUniform(7);
    const c = seededUniform(8);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    for (const x of xs) expect(x > 0 && x <= 1).toBe(true);
  });

  it.each([['seeded', seededUniform(1)], ['crypto', cryptoUniform()]])('%s uniforms have mean 1/2 and variance 1/12', (_n, u) => {
    const n = 200_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = u();
      s += x;
      s2 += x * x;
    }
    const mean = s / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(s2 / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });
});

describe('GaussianSampler', () => {
  it('moments of 1e6 seeded draws: mean 0, std 1 (within 0.5%), skewness 0, kurtosis 3', () => {
    const g = new GaussianSampler(seededUniform(123));
    const n = 1_000_000;
    let m1 = 0;
    let m2 = 0;
    let m3 = 0;
    let m4 = 0;
    for (let i = 0; i < n; i++) {
      const x = g.next();
      m1 += x;
      m2 += x * x;
      m3 += x * x * x;
      m4 += x * x * x * x;
    }
    m1 /= n;
    m2 /= n;
    m3 /= n;
    m4 /= n;
    expect(Math.abs(m1)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(Math.sqrt(m2) - 1)).toBeLessThan(0.005);
    expect(Math.abs(m3)).toBeLessThan(5 * Math.sqrt(15 / n));
    expect(Math.abs(m4 - 3)).toBeLessThan(5 * Math.sqrt(96 / n));
  });

  it('the empirical CDF matches the normal CDF (Kolmogorov-Smirnov, 200k draws)', () => {
    const g = new GaussianSampler(seededUniform(99));
    const n = 200_000;
    const xs = Float64Array.from({ length: n }, () => g.next()).sort();
    let d = 0;
    for (let i = 0; i < n; i += 97) {
      const f = normalCdf(xs[i]!);
      d = Math.max(d, Math.abs(f - i / n), Math.abs(f - (i + 1) / n));
    }
    // The 99.9% critical value of the KS statistic is 1.95 / sqrt(n).
    expect(d).toBeLessThan(1.95 / Math.sqrt(n));
  });

  it('addNoise with std = z * S has empirical std z * S within 1% (crypto source, 1e6 draws), and std 0 adds nothing', () => {
    const z = 1.3;
    const S = 0.7;
    const v = new Float32Array(1_000_000).fill(2);
    new GaussianSampler().addNoise(v, z * S);
    let s = 0;
    let s2 = 0;
    for (const x of v) {
      s += x - 2;
      s2 += (x - 2) ** 2;
    }
    const mean = s / v.length;
    const std = Math.sqrt(s2 / v.length - mean * mean);
    expect(Math.abs(std / (z * S) - 1)).toBeLessThan(0.01);
    expect(Math.abs(mean)).toBeLessThan((5 * z * S) / Math.sqrt(v.length));
    const w = new Float32Array([1, 2, 3]);
    new GaussianSampler().addNoise(w, 0);
    expect([...w]).toEqual([1, 2, 3]);
    expect(() => new GaussianSampler().addNoise(w, -1)).toThrow(/noise std/);
  });
});
