/** secaggParams: SecAgg+ defaults derived from n (k grows like log n, t a strict majority), and refusals. */
import { describe, expect, it } from 'vitest';
import { INT8_LEVELS, checkParams, majorityThreshold, quantLevels, ringBitsFor, secaggParams } from './params.js';

describe('secaggParams', () => {
  it('derives k from n and the design dropout rate; t is a strict majority of the k + 1 holders', () => {
    const ks = [10, 100, 1000, 10_000].map((n) => secaggParams(n).neighbors);
    expect(ks).toEqual([9, 78, 104, 130]);
    expect(secaggParams(10_000, { dropoutRate: 0.1 }).neighbors).toBe(22);
    for (const n of [3, 10, 57, 1000]) {
      const p = secaggParams(n);
      expect(p.threshold).toBe(majorityThreshold(p.neighbors));
      expect(2 * p.threshold).toBeGreaterThan(p.neighbors + 1);
      expect(p.neighbors).toBeLessThanOrEqual(n - 1);
    }
    expect(secaggParams(10, { threshold: 4, neighbors: 5, bits: 20, maxWeight: 7, clipRange: 0.1 })).toEqual({
      nAgents: 10, threshold: 4, neighbors: 5, bits: 20, maxWeight: 7, clipRange: 0.1,
    });
  });

  it('refuses parameters that cannot work, naming the field', () => {
    expect(() => secaggParams(1)).toThrow(/nAgents/);
    expect(() => secaggParams(10, { threshold: 11 })).toThrow(/threshold 11/);
    expect(() => secaggParams(10, { neighbors: 3, threshold: 5 })).toThrow(/threshold 5: need 2..neighbors \+ 1 \(4\)/);
    expect(() => secaggParams(10, { bits: 33 })).toThrow(/bits 33/);
    expect(() => secaggParams(1000, { bits: 10 })).toThrow(/fewer than 2 levels/);
    expect(() => checkParams({ ...secaggParams(5), clipRange: 0 })).toThrow(/clipRange/);
  });

  it('int8 mode: 255 levels per agent and the smallest ring that sums the cohort, bits = ceil(log2(n x 255 + 1))', () => {
    const rows = [2, 8, 10, 100, 257, 258, 1000, 10_000].map((n) => [n, ringBitsFor(n, INT8_LEVELS)]);
    expect(rows).toEqual([[2, 9], [8, 11], [10, 12], [100, 15], [257, 16], [258, 17], [1000, 18], [10_000, 22]]);
    for (const [n, bits] of rows) {
      expect(n! * 255).toBeLessThanOrEqual(2 ** bits! - 1); // holds the cohort's largest sum
      expect(n! * 255).toBeGreaterThan(2 ** (bits! - 1) - 1); // and is the smallest that does
    }
    const p = secaggParams(10, { quantization: 'int8', maxWeight: 600 });
    expect(p).toMatchObject({ bits: 12, levels: 255, maxWeight: 600 });
    expect(quantLevels(p)).toBe(255);
    expect(() => secaggParams(10, { quantization: 'int8', bits: 11 })).toThrow(/levels 255 x 10 agents = 2550 does not fit Z_2\^11 \(sums would wrap\): need bits >= 12/);
  });
});
