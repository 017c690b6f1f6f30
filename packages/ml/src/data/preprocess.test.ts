import { describe, expect, it } from 'vitest';
import { ValidationError, preprocessingSchema } from '@fedge/proto';
import { loadMnist } from '../mnist.js';
import { partitionIndices } from '../partition.js';
import { splitHoldout, subset } from '../dataset.js';
import { loadTable } from './load.js';
import { profileTable } from './profile.js';
import { buildPreprocessing, classesOf, defaultPreprocessing } from './preprocess.js';
import { encodeTable } from './encode.js';
import { partitionTable, splitTable, type RawTable } from './table.js';

const FP = 'b'.repeat(64);
function tabular(): RawTable {
  return {
    n: 4,
    columns: [
      { name: 'size', type: 'numeric', values: Float64Array.of(1, 2, NaN, 5) },
      { name: 'city', type: 'categorical', values: ['Oslo', 'Lima', null, 'Oslo'] },
      { name: 'flag', type: 'numeric', values: Float64Array.of(7, 7, 7, 7) },
      { name: 'sick', type: 'categorical', values: ['no', 'yes', 'yes', 'no'] },
      { name: 'price', type: 'numeric', values: Float64Array.of(10.5, -2, 3, 8) },
      { name: 'cls', type: 'numeric', values: Float64Array.of(0, 2, 1, 2) },
    ],
    targets: [],
    format: 'csv',
    fingerprint: FP,
    source: 'houses.csv',
  };
}
const columns = () => profileTable(tabular()).columns;

describe('buildPreprocessing', () => {
  it('zscore: fleet mean/std, sorted vocabularies, constant columns scale 1', () => {
    const pre = buildPreprocessing(columns(), { targets: ['price'], features: ['size', 'city', 'flag'], normalization: 'zscore', taskType: 'regression' });
    const mean = 8 / 3, std = Math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (5 - mean) ** 2) / 3);
    expect(pre.features[0]).toMatchObject({ name: 'size', kind: 'numeric', mean });
    expect((pre.features[0] as { shift: number }).shift).toBeCloseTo(mean, 12);
    expect((pre.features[0] as { scale: number }).scale).toBeCloseTo(std, 12);
    expect(pre.features[1]).toEqual({ name: 'city', kind: 'categorical', values: ['Lima', 'Oslo'] });
    expect(pre.features[2]).toEqual({ name: 'flag', kind: 'numeric', shift: 7, scale: 1, mean: 7 });
    expect(pre.targets).toEqual([{ name: 'price', kind: 'numeric' }]);
    expect(pre.inputWidth).toBe(4);
    expect(preprocessingSchema.parse(pre)).toEqual(pre);
    const mm = buildPreprocessing(columns(), { targets: ['4'], features: ['size'], normalization: 'minmax', taskType: 'regression' });
    expect(mm.features[0]).toMatchObject({ shift: 1, scale: 4 });
  });

  it('binary with class names; classification with an integer target counts max + 1 classes', () => {
    const bin = buildPreprocessing(columns(), { targets: ['sick'], features: ['size'], normalization: 'none', taskType: 'binary' });
    expect(bin.targets).toEqual([{ name: 'sick', kind: 'categorical', values: ['no', 'yes'] }]);
    const cls = buildPreprocessing(columns(), { targets: ['cls'], features: ['size'], normalization: 'none', taskType: 'classification' });
    expect(classesOf(cls, columns())).toBe(3);
    expect(classesOf(buildPreprocessing(columns(), { targets: ['city'], features: ['size'], normalization: 'none', taskType: 'classification' }), columns())).toBe(2);
  });

  const bad: [string, Parameters<typeof buildPreprocessing>[1], RegExp][] = [
    ['a target that is not a column', { targets: ['prise'], normalization: 'zscore', taskType: 'regression' }, /target 'prise' is not a column of the fleet's data; its columns are: size, city, flag, sick, price, cls/],
    ['binary over a 3-class column', { targets: ['cls'], features: ['size'], normalization: 'zscore', taskType: 'binary' }, /target 'cls' ranges over \[0, 2\]; binary needs 0\/1/],
    ['classification of a real value', { targets: ['price'], features: ['size'], normalization: 'zscore', taskType: 'classification' }, /target 'price' holds non-integers .* use regression/],
    ['regression of categories', { targets: ['sick'], features: ['size'], normalization: 'zscore', taskType: 'regression' }, /target 'sick' is categorical .* regression needs a numeric target/],
    ['no target', { targets: [], normalization: 'zscore', taskType: 'regression' }, /no target: name the target column/],
  ];
  it.each(bad)('%s is a ValidationError', (_what, o, pattern) => {
    expect(() => buildPreprocessing(columns(), o)).toThrow(pattern);
    expect(() => buildPreprocessing(columns(), o)).toThrow(ValidationError);
  });
});

describe('encodeTable', () => {
  it('normalizes, fills missing with the fleet mean, one-hots (unknown/missing -> zeros)', () => {
    const pre = buildPreprocessing(columns(), { targets: ['price'], features: ['size', 'city'], normalization: 'minmax', taskType: 'regression' });
    const ds = encodeTable(tabular(), pre, { type: 'regression', outputs: 1 });
    expect(ds).toMatchObject({ n: 4, features: 3, numClasses: 0, targets: 1 });
    const mean = 8 / 3;
    expect(Array.from(ds.x)).toEqual([0, 0, 1, 0.25, 1, 0, (mean - 1) / 4, 0, 0, 1, 0, 1].map(Math.fround));
    expect(Array.from(ds.y)).toEqual([10.5, -2, 3, 8]);
    const bin = buildPreprocessing(columns(), { targets: ['sick'], features: ['flag'], normalization: 'none', taskType: 'binary' });
    expect(Array.from(encodeTable(tabular(), bin, { type: 'binary', outputs: 1 }).y)).toEqual([0, 1, 1, 0]);
  });

  it('classification labels are validated against the model\'s classes, naming the example', () => {
    const pre = buildPreprocessing(columns(), { targets: ['cls'], features: ['size'], normalization: 'none', taskType: 'classification' });
    const ds = encodeTable(tabular(), pre, { type: 'classification', outputs: 3 });
    expect(ds.y).toEqual(Int32Array.of(0, 2, 1, 2));
    expect(ds.numClasses).toBe(3);
    expect(() => encodeTable(tabular(), pre, { type: 'classification', outputs: 2 })).toThrow(/houses\.csv: example 1 .*target 'cls': class 2 is outside 0\.\.1/);
    const multi = buildPreprocessing(columns(), { targets: ['cls', 'flag'], features: ['size'], normalization: 'none', taskType: 'regression' });
    expect(() => encodeTable(tabular(), multi, { type: 'multilabel', outputs: 2 })).toThrow(/example 1 .*'cls': 2 is not 0 or 1/);
    const other = { ...tabular(), columns: tabular().columns.filter((c) => c.name !== 'size') };
    expect(() => encodeTable(other, pre, { type: 'classification', outputs: 3 })).toThrow(/expects feature column 'size', which this data does not have/);
  });

  it('resizes image blocks to the fleet\'s image shape', () => {
    const t: RawTable = { n: 1, columns: [{ name: 'pixels', type: 'block', width: 4, values: Float32Array.of(0, 1, 0, 1) }, { name: 'label', type: 'categorical', values: ['a'] }], targets: ['label'], imageShape: [2, 2, 1], format: 'images', fingerprint: FP, source: 'imgs' };
    const pre = buildPreprocessing(profileTable(t).columns, { targets: ['label'], normalization: 'none', taskType: 'classification', imageShape: [1, 4, 1] });
    expect(pre.inputWidth).toBe(4);
    const same = buildPreprocessing(profileTable(t).columns, { targets: ['label'], normalization: 'none', taskType: 'classification', imageShape: [4, 4, 1] });
    expect(encodeTable(t, same, { type: 'classification', outputs: 1 }).x.length).toBe(16);
  });

  it('MNIST through loadTable -> partition -> split -> encode is exactly the legacy Dataset', async () => {
    const { train } = loadMnist();
    for (const o of [{ kind: 'shards' as const, numPartitions: 5, partitionId: 2, seed: 3 }, { kind: 'iid' as const, numPartitions: 1, partitionId: 0, seed: 42 }]) {
      const parts = partitionIndices(train.y, { kind: o.kind, numPartitions: o.numPartitions, seed: o.seed });
      const legacy = splitHoldout(subset(train, parts[o.partitionId]!), 0.1, o.seed + o.partitionId);
      const t = partitionTable(await loadTable('mnist'), o);
      const split = splitTable(t, 0.1, o.seed + o.partitionId);
      const pre = defaultPreprocessing(split.train);
      for (const k of ['train', 'holdout'] as const) {
        const ds = encodeTable(split[k], pre, { type: 'classification', outputs: 10 });
        expect({ ...ds, x: undefined }).toEqual({ ...legacy[k], x: undefined });
        expect(Buffer.from(ds.x.buffer).equals(Buffer.from(legacy[k].x.buffer))).toBe(true);
      }
      expect(split.train.fingerprint).not.toBe(t.fingerprint);
    }
  });
});

describe('partitionTable', () => {
  it('groups by a categorical first target (shards: few classes each) and bins a real-valued one', () => {
    const n = 400;
    const t: RawTable = {
      n,
      columns: [
        { name: 'x', type: 'numeric', values: Float64Array.from({ length: n }, (_, i) => i) },
        { name: 'kind', type: 'categorical', values: Array.from({ length: n }, (_, i) => `k${i % 8}`) },
      ],
      targets: ['kind'],
      format: 'csv',
      fingerprint: FP,
      source: 't',
    };
    const parts = [0, 1, 2, 3].map((p) => partitionTable(t, { kind: 'shards', numPartitions: 4, partitionId: p, seed: 1 }));
    expect(parts.reduce((a, p) => a + p.n, 0)).toBe(n);
    for (const p of parts) expect(new Set(p.columns[1]!.values as (string | null)[]).size).toBeLessThanOrEqual(2);
    const real = { ...t, targets: ['x'] };
    const d = [0, 1].map((p) => partitionTable(real, { kind: 'dirichlet', numPartitions: 2, partitionId: p, seed: 1, alpha: 0.05 }));
    expect(d[0]!.n + d[1]!.n).toBe(n);
    expect(() => partitionTable({ ...t, targets: [] }, { kind: 'shards', numPartitions: 2, partitionId: 0, seed: 1 })).toThrow(/groups examples by their target.*--target COL/);
    expect(() => partitionTable(t, { kind: 'iid', numPartitions: 2, partitionId: 2, seed: 1 })).toThrow(/--partition-id: 2 is outside 0\.\.1/);
  });
});
