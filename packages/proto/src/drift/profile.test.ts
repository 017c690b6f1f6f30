/** Drift bins from a run's task payload, training profiles from a raw table, and the fleet reference as their exact sum. */
import { describe, expect, it } from 'vitest';
import { driftSpec, predictedClass, UNIT_EDGES, type DriftSpec } from './spec.js';
import { profileTable, sumProfiles, type ProfileTable } from './profile.js';
import { histogram } from './histogram.js';
import type { Preprocessing } from '../task.js';

const pre = (normalization: Preprocessing['normalization']): Preprocessing => ({
  normalization,
  features: [
    { name: 'sqft', kind: 'numeric', shift: 1500, scale: 500, mean: 1600 },
    { name: 'city', kind: 'categorical', values: ['a', 'b'] },
    { name: 'px', kind: 'raw', width: 2 },
  ],
  targets: [{ name: 'y', kind: 'categorical', values: ['no', 'yes', 'maybe'] }],
  inputWidth: 5,
});

describe('drift spec', () => {
  it('derives raw-unit edges from the fleet normalization, a bin per category plus other, pooled [0, 1] for raw blocks', () => {
    const z = driftSpec({ task: { type: 'classification', outputs: 3 }, preprocessing: pre('zscore') });
    expect(z.features[0]).toEqual({ feature: 'sqft', kind: 'numeric', edges: [500, 750, 1000, 1250, 1500, 1750, 2000, 2250, 2500] });
    expect(z.features[1]).toEqual({ feature: 'city', kind: 'categorical', values: ['a', 'b'] });
    expect(z.features[2]).toEqual({ feature: 'px', kind: 'raw', edges: UNIT_EDGES });
    expect(z.classes).toBe(3);
    const mm = driftSpec({ task: { type: 'binary', outputs: 1 }, preprocessing: pre('minmax') });
    expect((mm.features[0] as { edges: number[] }).edges.map((e) => Math.round(e))).toEqual([1500, 1550, 1600, 1650, 1700, 1750, 1800, 1850, 1900, 1950, 2000]);
    expect(mm).toMatchObject({ classes: 2, binary: true });
    // No fleet spread in the payload: numeric features are not tracked; regression has no label bins.
    const none = driftSpec({ task: { type: 'regression', outputs: 1 }, preprocessing: pre('none') });
    expect(none.features.map((f) => f.feature)).toEqual(['city', 'px']);
    expect(none.classes).toBeUndefined();
    expect(driftSpec(undefined)).toEqual({ features: [{ feature: 'input', kind: 'raw', edges: UNIT_EDGES }] });
    expect([predictedClass([0.1, 0.7, 0.2], false), predictedClass([0.49], true), predictedClass([0.5], true)]).toEqual([1, 0, 1]);
  });
});

describe('training profiles', () => {
  const spec: DriftSpec = driftSpec({ task: { type: 'classification', outputs: 3 }, preprocessing: pre('zscore') });
  const table = (sqft: number[], city: (string | null)[], px: number[], y: (string | null)[]): ProfileTable => ({
    n: sqft.length,
    columns: [
      { name: 'sqft', type: 'numeric', values: Float64Array.from(sqft) },
      { name: 'city', type: 'categorical', values: city },
      { name: 'px', type: 'block', width: 2, values: Float32Array.from(px) },
      { name: 'y', type: 'categorical', values: y },
    ],
  });

  it('counts each feature on its bins (NaN skipped, unknown and missing categories in bin 0) and the labels by class', () => {
    const t = table([400, 1500, NaN, 3000], ['a', 'b', 'zz', null], [0, 0.05, 0.5, 1, 0.95, 2, -1, 0.3], ['yes', 'no', 'yes', 'bogus']);
    const p = profileTable(t, spec, { column: 'y', values: ['no', 'yes', 'maybe'] });
    expect(p.examples).toBe(4);
    expect(p.features).toEqual([
      { feature: 'sqft', counts: [1, 0, 0, 0, 0, 1, 0, 0, 0, 1] },
      { feature: 'city', counts: [2, 1, 1] },
      { feature: 'px', counts: histogram([0, 0.05, 0.5, 1, 0.95, 2, -1, 0.3], UNIT_EDGES) },
    ]);
    expect(p.labels).toEqual([1, 2, 0]); // 'bogus' is no class
    // Integer class labels (a numeric target) count directly; a missing column leaves its feature out.
    const q = profileTable({ n: 3, columns: [{ name: 'y', type: 'numeric', values: [2, 2, 7] }] }, spec, { column: 'y' });
    expect(q).toEqual({ examples: 3, features: [], labels: [0, 0, 2] });
  });

  it('the fleet reference is the exact sum of agents\' profiles; a feature on other bins is left out and named', () => {
    const a = profileTable(table([1000, 2000], ['a', 'a'], [0.1, 0.2, 0.3, 0.4], ['no', 'yes']), spec, { column: 'y', values: ['no', 'yes', 'maybe'] });
    const b = profileTable(table([1600], ['b'], [0.9, 0.9], ['maybe']), spec, { column: 'y', values: ['no', 'yes', 'maybe'] });
    const whole = profileTable(table([1000, 2000, 1600], ['a', 'a', 'b'], [0.1, 0.2, 0.3, 0.4, 0.9, 0.9], ['no', 'yes', 'maybe']), spec, { column: 'y', values: ['no', 'yes', 'maybe'] });
    const { profile, skipped } = sumProfiles([a, b]);
    expect(profile).toEqual(whole);
    expect(skipped).toEqual([]);
    const odd = { examples: 1, features: [{ feature: 'sqft', counts: [1, 0] }] };
    const r = sumProfiles([a, odd]);
    expect(r.skipped).toEqual(['sqft']);
    expect(r.profile.features.find((f) => f.feature === 'sqft')!.counts).toEqual(a.features[0]!.counts);
  });
});
