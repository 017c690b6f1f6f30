import { describe, expect, it } from 'vitest';
import { partitionIndices, type PartitionOptions } from './partition.js';
import { createRng } from './rng.js';
import { loadMnist } from './mnist.js';

const labels = loadMnist().train.y;

function labelHist(idx: number[]): number[] {
  const h = new Array<number>(10).fill(0);
  for (const i of idx) h[labels[i]!]!++;
  return h;
}

function expectExactCover(parts: number[][], n: number): void {
  const seen = new Uint8Array(n);
  for (const p of parts) {
    expect(p.length).toBeGreaterThan(0);
    for (const i of p) seen[i]!++;
  }
  expect(seen.every((c) => c === 1)).toBe(true);
}

describe('partitionIndices', () => {
  const kinds: PartitionOptions[] = [
    { kind: 'iid', numPartitions: 10, seed: 1 },
    { kind: 'shards', numPartitions: 100, seed: 1 },
    { kind: 'dirichlet', numPartitions: 20, seed: 1, alpha: 0.1 },
  ];

  it.each(kinds)('$kind uses every index exactly once and is reproducible by seed', (opts) => {
    const a = partitionIndices(labels, opts);
    expect(a).toHaveLength(opts.numPartitions);
    expectExactCover(a, labels.length);
    expect(partitionIndices(labels, opts)).toEqual(a);
    expect(partitionIndices(labels, { ...opts, seed: 2 })).not.toEqual(a);
  });

  it('iid: balanced sizes and label mix close to the global one', () => {
    const parts = partitionIndices(labels, { kind: 'iid', numPartitions: 10, seed: 7 });
    const sizes = parts.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    const global = labelHist([...labels.keys()]).map((c) => c / labels.length);
    for (const p of parts) {
      const h = labelHist(p).map((c) => c / p.length);
      for (let k = 0; k < 10; k++) expect(Math.abs(h[k]! - global[k]!)).toBeLessThan(0.04);
    }
  });

  it('shards: at most 2 labels per partition with 2 shards each', () => {
    for (const numPartitions of [5, 50, 100, 450]) {
      const parts = partitionIndices(labels, { kind: 'shards', numPartitions, seed: 3 });
      expectExactCover(parts, labels.length);
      for (const p of parts) expect(labelHist(p).filter((c) => c > 0).length).toBeLessThanOrEqual(2);
    }
    const three = partitionIndices(labels, { kind: 'shards', numPartitions: 20, seed: 3, shardsPerPartition: 3 });
    for (const p of three) expect(labelHist(p).filter((c) => c > 0).length).toBeLessThanOrEqual(3);
  });

  it('dirichlet: small alpha is skewed, large alpha is near-uniform', () => {
    const dominant = (alpha: number) => {
      const parts = partitionIndices(labels, { kind: 'dirichlet', numPartitions: 10, seed: 11, alpha });
      expectExactCover(parts, labels.length);
      const shares = parts.map((p) => Math.max(...labelHist(p)) / p.length);
      return shares.reduce((a, b) => a + b, 0) / shares.length;
    };
    expect(dominant(0.05)).toBeGreaterThan(0.5);
    expect(dominant(1000)).toBeLessThan(0.16);
  });

  it('dirichlet keeps every partition non-empty even when there are nearly as many partitions as examples', () => {
    const small = labels.subarray(0, 60);
    const parts = partitionIndices(small, { kind: 'dirichlet', numPartitions: 50, seed: 5, alpha: 0.01 });
    expectExactCover(parts, small.length);
  });

  it('rejects impossible requests with a ValidationError', () => {
    expect(() => partitionIndices(labels.subarray(0, 3), { kind: 'iid', numPartitions: 4, seed: 0 })).toThrow(/at least 4/);
    expect(() => partitionIndices(labels, { kind: 'iid', numPartitions: 0, seed: 0 })).toThrow(/numPartitions/);
  });
});

describe('createRng', () => {
  it('is deterministic, uniform-ish and seed dependent', () => {
    const a = createRng(42), b = createRng(42), c = createRng(43);
    const xs = Array.from({ length: 10000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(c()).not.toBe(xs[0]);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - 0.5)).toBeLessThan(0.02);
  });
});
