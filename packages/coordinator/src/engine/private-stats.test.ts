import { describe, expect, it } from 'vitest';
import { GaussianSampler, type ColumnProfile, type DataProfile, type Preprocessing } from '@fedge/proto';
import { applyUserStatistics, columnsNeedingStatistics, noiseNumericStatistics } from './private-stats.js';
import { parseRunConfig } from '../config/run-config.js';

const num = (name: string, values: number[]): ColumnProfile => ({
  name, type: 'numeric', count: values.length, missing: 0, integer: false,
  sum: values.reduce((a, b) => a + b, 0), sumSq: values.reduce((a, b) => a + b * b, 0), min: Math.min(...values), max: Math.max(...values),
});
const profile = (cols: ColumnProfile[]): DataProfile => ({ format: 'csv', n: (cols[0] as { count: number }).count, columns: cols, targets: ['y'], fingerprint: '0'.repeat(64) });
/** A deterministic source: with a negligible noise multiplier the draws do not matter, only that they are finite. */
const zeroNoise = new GaussianSampler(() => 0.5);

describe('private statistics', () => {
  it('clips each agent\'s (count, sum, sumSq) vector to the clip norm before summing', () => {
    const a = profile([num('x', [1, 2, 3]), num('y', [0, 1, 0])]);
    const b = profile([num('x', [1000, 1000]), num('y', [1, 1])]);
    const combined = [num('x', [1, 2, 3, 1000, 1000]), num('y', [0, 1, 0, 1, 1])];
    // Noise multiplier ~0: what is left is the sum of clipped vectors.
    const r = noiseNumericStatistics([a, b], combined, ['x'], 100, 1e-12, zeroNoise);
    expect(r.clipped).toBe(1);
    const x = r.columns[0] as Extract<ColumnProfile, { type: 'numeric' }>;
    const normB = Math.hypot(2, 2000, 2e6);
    expect(x.sum).toBeCloseTo(6 + (2000 * 100) / normB, 6);
    expect(x.count).toBe(Math.round(3 + (2 * 100) / normB));
    expect(x.min).toBe(x.max); // min/max are not released
    expect(r.columns[1]).toEqual(combined[1]); // columns that are not normalized stay as they were
  });

  it('adds noise with std noiseMultiplier x clipNorm (empirically; this vector is under the clip norm)', () => {
    const a = profile([num('x', [1, 2, 3])]);
    const sums: number[] = [];
    for (let i = 0; i < 4000; i++) sums.push((noiseNumericStatistics([a], [num('x', [1, 2, 3])], ['x'], 100, 0.2).columns[0] as { sum: number }).sum);
    const mean = sums.reduce((s, v) => s + v, 0) / sums.length;
    const std = Math.sqrt(sums.reduce((s, v) => s + (v - mean) ** 2, 0) / sums.length);
    expect(mean).toBeGreaterThan(6 - 3 * 20 / Math.sqrt(4000));
    expect(mean).toBeLessThan(6 + 3 * 20 / Math.sqrt(4000));
    expect(std / 20).toBeGreaterThan(0.95);
    expect(std / 20).toBeLessThan(1.05);
  });

  it('uses the user\'s own statistics instead of the fleet\'s, and needs none for those columns', () => {
    const pre: Preprocessing = {
      normalization: 'zscore',
      features: [{ name: 'x', kind: 'numeric', shift: 0, scale: 1, mean: 0 }, { name: 'z', kind: 'numeric', shift: 0, scale: 1, mean: 0 }],
      targets: [{ name: 'y', kind: 'numeric' }],
      inputWidth: 2,
    };
    const c = parseRunConfig({ task: { type: 'regression', target: 'y', statistics: { x: { mean: 5, std: 2 } } } });
    expect(columnsNeedingStatistics(pre, [num('x', [1]), num('z', [1])], c.task)).toEqual(['z']);
    const out = applyUserStatistics(pre, c.task);
    expect(out.features[0]).toEqual({ name: 'x', kind: 'numeric', shift: 5, scale: 2, mean: 5 });
    expect(() => applyUserStatistics(pre, parseRunConfig({ task: { type: 'regression', statistics: { nope: { mean: 1, std: 1 } } } }).task)).toThrow(/task\.statistics\.nope: not a feature column/);
    expect(() => parseRunConfig({ task: { normalization: 'minmax', statistics: { x: { mean: 1, std: 1 } } } })).toThrow(/is for normalization zscore/);
  });
});
