import { describe, expect, it } from 'vitest';
import { clipToNorm, l2Norm } from './clip.js';
import { GaussianSampler, seededUniform } from './gaussian.js';

describe('clipToNorm', () => {
  it('leaves an update within the bound untouched', () => {
    const v = new Float32Array([3, 4]);
    expect(clipToNorm(v, 5)).toEqual({ norm: 5, factor: 1, clipped: false });
    expect([...v]).toEqual([3, 4]);
  });

  it('scales an update above the bound onto it, keeping its direction', () => {
    const v = new Float32Array([30, 40]);
    const r = clipToNorm(v, 5);
    expect(r.clipped).toBe(true);
    expect(r.norm).toBe(50);
    expect(l2Norm(v)).toBeLessThanOrEqual(5);
    expect(l2Norm(v)).toBeGreaterThan(5 * (1 - 1e-5));
    expect(v[1]! / v[0]!).toBeCloseTo(4 / 3, 6);
  });

  it('bounds the norm of random float32 updates of many sizes and scales, across tensors', () => {
    const g = new GaussianSampler(seededUniform(5));
    for (const n of [1, 7, 1000, 200_000])
      for (const scale of [1e-4, 1, 1e3]) {
        const parts = [new Float32Array(n), new Float32Array(3)];
        for (const p of parts) for (let i = 0; i < p.length; i++) p[i] = scale * g.next();
        const S = 0.37;
        clipToNorm(parts, S);
        expect(l2Norm(parts)).toBeLessThanOrEqual(S);
      }
  });

  it('rejects a bad clip norm and non-finite updates', () => {
    expect(() => clipToNorm(new Float32Array(2), 0)).toThrow(/clip norm/);
    expect(() => clipToNorm(new Float32Array([NaN]), 1)).toThrow(/NaN/);
  });
});
