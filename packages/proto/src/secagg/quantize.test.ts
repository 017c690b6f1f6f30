/** Quantization of weighted updates: round trip within the documented bound, no wrap at the extremes, clipping. */
import { describe, expect, it } from 'vitest';
import { quantLevels, secaggParams } from './params.js';
import { dequantizeSum, quantizationBound, quantizeInto } from './quantize.js';

describe('secagg quantization', () => {
  it('sums of quantized weighted updates decode to sum(w x) and sum(w) within the bound', () => {
    for (const rounding of ['stochastic', 'nearest'] as const) {
      for (const bits of [32, 20]) {
        const n = 10;
        const p = secaggParams(n, { bits, clipRange: 0.5, maxWeight: 1000 });
        const m = 2000;
        const sum = new Uint32Array(m + 1);
        const exact = new Float64Array(m);
        let wsum = 0;
        for (let a = 0; a < n; a++) {
          const x = Float32Array.from({ length: m }, (_, i) => Math.sin(a * 31 + i) * 0.6); // some beyond the clip
          const w = 100 + 37 * a;
          const q = new Uint32Array(m + 1);
          quantizeInto(q, x, w, p, rounding);
          for (let i = 0; i <= m; i++) sum[i] += q[i]!;
          for (let i = 0; i < m; i++) exact[i] += w * Math.max(-0.5, Math.min(0.5, x[i]!));
          wsum += w;
        }
        const d = dequantizeSum(sum, n, p);
        const bound = quantizationBound(p, n, rounding);
        expect(Math.abs(d.weightSum - wsum)).toBeLessThanOrEqual(bound.weightSum);
        let worst = 0;
        for (let i = 0; i < m; i++) worst = Math.max(worst, Math.abs(d.weightedSum[i]! - exact[i]!));
        // float32 output adds a relative 2^-24 on top of the grid error.
        expect(worst).toBeLessThanOrEqual(bound.weightedSum + 1e-6 * Math.max(...exact.map(Math.abs)));
        if (bits === 20) expect(bound.weightedSum).toBeGreaterThan(1e-3); // a coarse grid: the bound is not vacuous
      }
    }
  });

  it('n inputs at the top of the grid sum to n * L <= 2^bits - 1: no wrap, decodes to n * c and n * maxWeight', () => {
    for (const [n, bits] of [[10, 32], [100, 32], [7, 16], [1000, 24]] as const) {
      const p = secaggParams(n, { bits, clipRange: 2, maxWeight: 50 });
      const L = quantLevels(p);
      expect(n * L).toBeLessThanOrEqual(2 ** bits - 1);
      expect(n * (L + 1)).toBeGreaterThan(2 ** bits - 1); // L is the largest such grid
      const sum = new Uint32Array(3);
      const q = new Uint32Array(3);
      for (let a = 0; a < n; a++) {
        quantizeInto(q, Float32Array.of(5, -7), 80, p); // beyond clip and maxWeight: clipped
        expect(Array.from(q)).toEqual([L, 0, L]);
        for (let i = 0; i < 3; i++) sum[i] = (sum[i]! + q[i]!) % 2 ** bits;
      }
      const d = dequantizeSum(sum, n, p);
      expect(d.weightSum).toBeCloseTo(n * 50, 6);
      expect(d.weightedSum[0]).toBeCloseTo(n * 50 * 2, 2);
      expect(d.weightedSum[1]).toBeCloseTo(-n * 50 * 2, 2);
      expect(d.mean[0]).toBeCloseTo(2, 5);
    }
  });

  it('stochastic rounding is unbiased', () => {
    const p = secaggParams(2, { bits: 8, clipRange: 1, maxWeight: 1 });
    const L = quantLevels(p); // 127 levels: step 2/127
    const x = new Float32Array(20000).fill(0.0037); // between grid points
    const q = new Uint32Array(x.length + 1);
    quantizeInto(q, x, 1, p);
    let mean = 0;
    for (let i = 0; i < x.length; i++) mean += q[i]! / x.length;
    expect(Math.abs(mean * (2 / L) - 1 - 0.0037)).toBeLessThan(0.0015);
  });

  it('refuses NaN coordinates and negative weights', () => {
    const p = secaggParams(4);
    expect(() => quantizeInto(new Uint32Array(3), Float32Array.of(1, NaN), 1, p)).toThrow(/coordinate 1 is NaN/);
    expect(() => quantizeInto(new Uint32Array(3), Float32Array.of(1, 2), -1, p)).toThrow(/weight/);
  });

  it('int8 mode, worst case: n agents at the top of 0..255 with the heaviest weight sum to n x 255 without wrapping in the derived ring', () => {
    for (const n of [2, 8, 10, 100, 1000]) {
      const p = secaggParams(n, { quantization: 'int8', clipRange: 0.25, maxWeight: 600 });
      const sum = new Uint32Array(3);
      const q = new Uint32Array(3);
      for (let a = 0; a < n; a++) {
        // beyond the clip range and above maxWeight: clipped to c and capped to maxWeight, p = 1
        quantizeInto(q, Float32Array.of(9, -9), 5000, p);
        expect(Array.from(q)).toEqual([255, 0, 255]);
        for (let i = 0; i < 3; i++) sum[i] = (sum[i]! + q[i]!) % 2 ** p.bits;
      }
      expect(Array.from(sum)).toEqual([n * 255, 0, n * 255]); // not reduced: no wrap
      const d = dequantizeSum(sum, n, p);
      expect(d.weightSum).toBeCloseTo(n * 600, 6);
      expect(d.mean[0]).toBeCloseTo(0.25, 6);
      expect(d.mean[1]).toBeCloseTo(-0.25, 6);
    }
  });

  it('int8 mode is unbiased: the mean of many stochastic roundings of weighted values off the grid converges to them', () => {
    const n = 10;
    const p = secaggParams(n, { quantization: 'int8', clipRange: 0.1, maxWeight: 600 });
    const m = 20_000;
    const x = Float32Array.from({ length: m }, (_, i) => ((i % 97) / 97 - 0.5) * 0.2);
    const sum = new Uint32Array(m + 1);
    const exact = new Float64Array(m);
    let wsum = 0;
    for (let a = 0; a < n; a++) {
      const w = 400 + 20 * a; // p from 0.67 to 0.97 of maxWeight
      const q = new Uint32Array(m + 1);
      quantizeInto(q, x, w, p);
      for (let i = 0; i <= m; i++) sum[i] = (sum[i]! + q[i]!) % 2 ** p.bits;
      for (let i = 0; i < m; i++) exact[i] += w * x[i]!;
      wsum += w;
    }
    const d = dequantizeSum(sum, n, p);
    const bound = quantizationBound(p, n);
    expect(Math.abs(d.weightSum - wsum)).toBeLessThanOrEqual(bound.weightSum);
    let worst = 0;
    let bias = 0;
    for (let i = 0; i < m; i++) {
      const e = d.weightedSum[i]! - exact[i]!;
      worst = Math.max(worst, Math.abs(e));
      bias += e / m;
    }
    expect(worst).toBeLessThanOrEqual(bound.weightedSum + 1e-3);
    // one grid step of the weighted sum is 2c x maxWeight / 255 = 0.47; averaged over 20,000 coordinates the error is ~0
    expect(Math.abs(bias)).toBeLessThan(0.02);
    expect(bound.weightedSum).toBeGreaterThan(1); // a coarse grid, so the check above is not vacuous
  });
});
