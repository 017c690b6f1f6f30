/** secaggParams: SecAgg+ defaults derived from n (k grows like log n, t a strict majority), and refusals. */
import { describe, expect, it } from 'vitest';
import { checkParams, majorityThreshold, secaggParams } from './params.js';

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
});
