import { describe, expect, it } from 'vitest';
import { GaussianSampler, l2Norm, seededUniform } from '@fedge/proto';
import { privatizeUpdate } from './privacy.js';

describe('privatizeUpdate', () => {
  it('does nothing without DP settings', () => {
    const d = new Float32Array([3, 4]);
    expect(privatizeUpdate(d, {})).toEqual({});
    expect(privatizeUpdate(d, { clipNorm: 0, noiseStd: 0, reportClipped: false })).toEqual({});
    expect([...d]).toEqual([3, 4]);
  });

  it('clips to the norm and reports dp_clipped only when asked', () => {
    const d = new Float32Array([30, 40]);
    expect(privatizeUpdate(d, { clipNorm: 5 })).toEqual({});
    expect(l2Norm(d)).toBeLessThanOrEqual(5);
    expect(privatizeUpdate(new Float32Array([30, 40]), { clipNorm: 5, reportClipped: true })).toEqual({ dp_clipped: 1 });
    expect(privatizeUpdate(new Float32Array([0.3, 0.4]), { clipNorm: 5, reportClipped: true })).toEqual({ dp_clipped: 0 });
  });

  it('local DP: clips first, then adds noise of std noiseStd (empirical std within 1%)', () => {
    const n = 500_000;
    const d = new Float32Array(n).fill(1); // norm sqrt(n), clipped to S = 2
    const S = 2;
    const std = 1.5 * S;
    privatizeUpdate(d, { clipNorm: S, noiseStd: std }, new GaussianSampler(seededUniform(3)));
    const clippedValue = (S / Math.sqrt(n)) * (1 - 1e-6);
    let s2 = 0;
    for (const x of d) s2 += (x - clippedValue) ** 2;
    expect(Math.abs(Math.sqrt(s2 / n) / std - 1)).toBeLessThan(0.01);
  });
});
