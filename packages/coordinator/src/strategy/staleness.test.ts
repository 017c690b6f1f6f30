import { describe, expect, it } from 'vitest';
import { buffedStep } from './fedbuff.js';
import { stalenessHistogram, stalenessWeight } from './staleness.js';

describe('staleness functions', () => {
  it('constant is 1 at every staleness', () => {
    for (const t of [0, 1, 7, 1000]) expect(stalenessWeight({ fn: 'constant' }, t)).toBe(1);
  });
  it('polynomial is (1 + tau)^-a', () => {
    expect(stalenessWeight({ fn: 'polynomial', a: 0.5 }, 0)).toBe(1);
    expect(stalenessWeight({ fn: 'polynomial', a: 0.5 }, 3)).toBeCloseTo(0.5, 15);
    expect(stalenessWeight({ fn: 'polynomial', a: 1 }, 9)).toBeCloseTo(0.1, 15);
  });
  it('hinge is flat up to b, then 1 / (a (tau - b) + 1)', () => {
    const f = { fn: 'hinge' as const, a: 10, b: 4 };
    expect(stalenessWeight(f, 4)).toBe(1);
    expect(stalenessWeight(f, 5)).toBeCloseTo(1 / 11, 15);
    expect(stalenessWeight(f, 6)).toBeCloseTo(1 / 21, 15);
  });
  it('is non-increasing in tau and rejects bad tau', () => {
    for (const f of [{ fn: 'polynomial' as const, a: 0.5 }, { fn: 'hinge' as const, a: 2, b: 1 }])
      for (let t = 0; t < 50; t++) expect(stalenessWeight(f, t + 1)).toBeLessThanOrEqual(stalenessWeight(f, t));
    expect(() => stalenessWeight({ fn: 'constant' }, -1)).toThrow(/non-negative integer/);
    expect(() => stalenessWeight({ fn: 'constant' }, 0.5)).toThrow(/non-negative integer/);
  });
  it('histograms staleness values', () => {
    expect(stalenessHistogram([0, 2, 0, 1, 2, 2])).toEqual({ 0: 2, 1: 1, 2: 3 });
  });
  it('FedBuff divides the staleness-weighted sum by examples alone', () => {
    // Two updates of delta 1, 10 examples each, one stale with s = 0.5: sum = 10 + 5 = 15 over 20 examples.
    const mean = new Float32Array([15 / 15]); // weighted mean as streamed: 15 / (10 + 5)
    expect(buffedStep(mean, 15, 20)[0]).toBeCloseTo(0.75, 6);
  });
});
