import { describe, expect, it } from 'vitest';
import { MAX_CATEGORIES, MAX_PROFILE_JSON, dataProfileSchema, type ColumnProfile, type DataProfile } from '@fedge/proto';
import { createRng, normal } from '../rng.js';
import { profileTable } from './profile.js';
import { columnMoments, combineProfiles } from './combine.js';
import { partitionTable, type RawTable } from './table.js';

const FP = 'a'.repeat(64);

/** 3,000 rows: a price around 1e4 (std ~10: hard for sum-of-squares), a signed ratio, a count with gaps, a city. */
function table(): RawTable {
  const rng = createRng(9);
  const n = 3000;
  const cities = ['Oslo', 'Lima', 'Pune', 'Kyiv'];
  return {
    n,
    columns: [
      { name: 'price', type: 'numeric', values: Float64Array.from({ length: n }, () => 1e4 + 10 * normal(rng)) },
      { name: 'ratio', type: 'numeric', values: Float64Array.from({ length: n }, () => normal(rng) * 1e-3 - 0.5) },
      { name: 'count', type: 'numeric', values: Float64Array.from({ length: n }, (_, i) => (i % 17 === 0 ? NaN : Math.floor(rng() * 50))) },
      { name: 'city', type: 'categorical', values: Array.from({ length: n }, (_, i) => (i % 31 === 0 ? null : cities[Math.floor(rng() * 4)]!)) },
      { name: 'y', type: 'numeric', values: Float64Array.from({ length: n }, () => Math.floor(rng() * 3)) },
    ],
    targets: ['y'],
    format: 'csv',
    fingerprint: FP,
    source: 'test',
  };
}

/** Centralized two-pass statistics over the non-missing values. */
function central(v: Float64Array): { mean: number; std: number; min: number; max: number } {
  const xs = Array.from(v).filter((x) => !Number.isNaN(x));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
const entry = (name: string, profile: DataProfile) => ({ agentId: `id-${name}`, name, profile });

describe('profileTable', () => {
  it('reports schema and statistics that dataProfileSchema accepts', () => {
    const p = profileTable(table());
    expect(dataProfileSchema.parse(p)).toEqual(p);
    expect(p.columns[2]).toMatchObject({ name: 'count', type: 'numeric', missing: Math.ceil(3000 / 17), integer: true });
    expect(p.columns[3]).toMatchObject({ type: 'categorical', missing: Math.ceil(3000 / 31), truncated: false });
    expect(Object.keys((p.columns[3] as { values: object }).values).sort()).toEqual(['Kyiv', 'Lima', 'Oslo', 'Pune']);
  });

  it('keeps wide data and many categories under MAX_PROFILE_JSON', () => {
    const n = 20;
    const wide: RawTable = {
      n,
      columns: [
        { name: 'pixels', type: 'block', width: 224 * 224 * 3, values: new Float32Array(n * 224 * 224 * 3).fill(0.25) },
        { name: 'word', type: 'categorical', values: Array.from({ length: n }, (_, i) => `w${String(i).padStart(200, '0')}`) },
      ],
      targets: [],
      format: 'images',
      fingerprint: FP,
      source: 'wide',
    };
    const p = profileTable(wide);
    expect(p.columns[0]).toEqual({ name: 'pixels', type: 'block', width: 150528, count: n, min: 0.25, max: 0.25 });
    expect(JSON.stringify(p).length).toBeLessThan(MAX_PROFILE_JSON);
    const words = Array.from({ length: 3000 }, (_, i) => `word-${i}`);
    const t: RawTable = { ...wide, n: 3000, columns: [{ name: 'w', type: 'categorical', values: words }] };
    const c = profileTable(t).columns[0] as Extract<ColumnProfile, { type: 'categorical' }>;
    expect(Object.keys(c.values)).toHaveLength(MAX_CATEGORIES);
    expect(c.truncated).toBe(true);
    expect(dataProfileSchema.safeParse(profileTable(t)).success).toBe(true);
  });
});

describe('combineProfiles', () => {
  it('federated statistics equal the centralized ones on the union (<= 1e-6 relative)', () => {
    const whole = table();
    const parts = [0, 1, 2].map((p) => partitionTable(whole, { kind: 'dirichlet', numPartitions: 3, partitionId: p, seed: 4, alpha: 0.3 }));
    expect(parts.reduce((a, p) => a + p.n, 0)).toBe(whole.n);
    const combined = combineProfiles(parts.map((p, i) => entry(`agent-${i}`, profileTable(p))));
    expect(combined.refused).toEqual([]);
    expect(combined.n).toBe(whole.n);
    for (const [i, name] of [[0, 'price'], [1, 'ratio'], [2, 'count'], [4, 'y']] as const) {
      const col = combined.columns[i]!;
      if (col.type !== 'numeric') throw new Error('numeric expected');
      const fed = columnMoments(col);
      const ref = central(whole.columns[i]!.values as Float64Array);
      for (const k of ['mean', 'std', 'min', 'max'] as const) expect(rel(fed[k], ref[k]), `${name}.${k}`).toBeLessThanOrEqual(1e-6);
    }
    // Counts, missing and category counts are exact: the same as one profile of the whole table.
    const one = profileTable(whole);
    expect(combined.columns[2]).toMatchObject({ count: (one.columns[2] as { count: number }).count, missing: (one.columns[2] as { missing: number }).missing });
    expect(combined.columns[3]).toEqual(one.columns[3]);
  });

  it('refuses an agent whose schema differs, naming the column; the majority schema wins', () => {
    const base = profileTable(table());
    const renamed: DataProfile = { ...base, columns: base.columns.map((c, i) => (i === 2 ? { ...c, name: 'COUNT' } : c)) };
    const fewer: DataProfile = { ...base, columns: base.columns.slice(0, 4) };
    const r = combineProfiles([entry('b', base), entry('c', renamed), entry('a', base), entry('d', fewer)]);
    expect(r.accepted.map((e) => e.name)).toEqual(['b', 'a']);
    expect(r.refused).toEqual([
      { agentId: 'id-c', name: 'c', reason: "data schema differs from the fleet's: column 3 is 'COUNT' (numeric) here, 'count' (numeric) in the fleet's schema" },
      { agentId: 'id-d', name: 'd', reason: "data schema differs from the fleet's: 4 columns here, 5 in the fleet's schema (column 5 'y' (numeric) is missing here)" },
    ]);
    expect(r.n).toBe(6000);
    // A tie goes to the schema of the agent first by name.
    const tie = combineProfiles([entry('z', base), entry('m', renamed)]);
    expect(tie.accepted.map((e) => e.name)).toEqual(['m']);
    const img = (shape: number[]): DataProfile => ({ ...base, columns: [{ name: 'pixels', type: 'block', width: 12, count: 1, min: 0, max: 1 }], imageShape: shape });
    expect(combineProfiles([entry('a', img([2, 2, 3])), entry('b', img([2, 2, 3])), entry('c', img([1, 4, 3]))]).refused[0]!.reason).toMatch(/images are 1x4x3 here, 2x2x3 in the fleet's schema/);
  });

  it('categorical counts add and are re-capped to MAX_CATEGORIES', () => {
    const cat = (from: number, count: number): DataProfile => ({
      format: 'csv', n: count, targets: [], fingerprint: FP,
      columns: [{ name: 'w', type: 'categorical', count, missing: 0, values: Object.fromEntries(Array.from({ length: count }, (_, i) => [`v${from + i}`, 1])), truncated: false }],
    });
    const r = combineProfiles([entry('a', cat(0, 800)), entry('b', cat(400, 800))]);
    const c = r.columns[0] as Extract<ColumnProfile, { type: 'categorical' }>;
    expect(Object.keys(c.values)).toHaveLength(MAX_CATEGORIES);
    expect(c.truncated).toBe(true);
    expect(c.values['v400']).toBe(2);
    expect(c.count).toBe(1600);
  });
});
