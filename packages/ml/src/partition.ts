/** Seeded splits of a dataset across simulated clients: IID, McMahan shards (pathological non-IID), Dirichlet. */
import { ValidationError } from '@fedge/proto';
import { createRng, gamma, shuffleInPlace } from './rng.js';

export type PartitionKind = 'iid' | 'shards' | 'dirichlet';
export interface PartitionOptions {
  kind: PartitionKind;
  numPartitions: number;
  seed: number;
  /** Dirichlet concentration; default 0.5. Small => each client sees few classes. */
  alpha?: number;
  /** Shards per partition for kind 'shards'; default 2. */
  shardsPerPartition?: number;
}

/**
 * Returns numPartitions disjoint, non-empty index lists covering every index exactly once. Pure JS on a
 * seeded PRNG, so the same labels + options give the same split on every process. `labels` are class ids
 * (any numbers; shards and dirichlet group equal values, iid only uses the count).
 */
export function partitionIndices(labels: ArrayLike<number>, opts: PartitionOptions): number[][] {
  const { numPartitions: k } = opts;
  if (!Number.isInteger(k) || k < 1) throw new ValidationError(`numPartitions: expected a positive integer, got ${k}`);
  if (labels.length < k) throw new ValidationError(`numPartitions: ${k} partitions need at least ${k} examples, got ${labels.length}`);
  const rng = createRng(opts.seed);
  switch (opts.kind) {
    case 'iid':
      return iid(labels.length, k, rng);
    case 'shards':
      return shards(labels, k, opts.shardsPerPartition ?? 2, rng);
    case 'dirichlet':
      return dirichlet(labels, k, opts.alpha ?? 0.5, rng);
    default:
      throw new ValidationError(`kind: expected iid, shards or dirichlet, got "${String(opts.kind)}"`);
  }
}

/** Cuts `items` into `parts` contiguous pieces whose sizes differ by at most one. */
function chunk<T>(items: T[], parts: number): T[][] {
  const out: T[][] = [];
  for (let p = 0; p < parts; p++)
    out.push(items.slice(Math.floor((p * items.length) / parts), Math.floor(((p + 1) * items.length) / parts)));
  return out;
}

function iid(n: number, k: number, rng: () => number): number[][] {
  const perm = Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(perm, rng);
  return chunk(perm, k);
}

/**
 * McMahan et al.: sort by label, cut into k * s shards, deal s random shards to each partition. Unlike a
 * plain cut of the sorted list, shards are cut within each class (shard counts per class proportional to
 * class size, largest remainder) so no shard straddles two labels and a partition sees at most s labels.
 * Falls back to the plain cut when there are fewer shards than classes.
 */
function shards(labels: ArrayLike<number>, k: number, s: number, rng: () => number): number[][] {
  if (!Number.isInteger(s) || s < 1) throw new ValidationError(`shardsPerPartition: expected a positive integer, got ${s}`);
  const total = k * s;
  if (labels.length < total) throw new ValidationError(`shards: ${total} shards need at least ${total} examples, got ${labels.length}`);
  const byClass = groupByClass(labels, rng);
  const classes = [...byClass.values()];
  let pieces: number[][];
  if (total >= classes.length) {
    const counts = allocate(classes.map((c) => c.length), total);
    pieces = classes.flatMap((c, i) => chunk(c, counts[i]!));
  } else {
    pieces = chunk(classes.flat(), total);
  }
  shuffleInPlace(pieces, rng);
  return Array.from({ length: k }, (_, p) => pieces.slice(p * s, (p + 1) * s).flat());
}

/** Splits `total` shards over classes of the given sizes: >= 1 and <= size each, otherwise near-proportional. */
function allocate(sizes: number[], total: number): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  const ideal = sizes.map((sz) => (sz * total) / n);
  const counts = ideal.map((v, i) => Math.min(sizes[i]!, Math.max(1, Math.floor(v))));
  let left = total - counts.reduce((a, b) => a + b, 0);
  // Largest-remainder rounding: adjust whichever class is furthest from its ideal share (ties: lower label).
  while (left !== 0) {
    let best = -1;
    for (let i = 0; i < sizes.length; i++) {
      const ok = left > 0 ? counts[i]! < sizes[i]! : counts[i]! > 1;
      const gap = left > 0 ? ideal[i]! - counts[i]! : counts[i]! - ideal[i]!;
      if (ok && (best < 0 || gap > (left > 0 ? ideal[best]! - counts[best]! : counts[best]! - ideal[best]!))) best = i;
    }
    if (best < 0) throw new ValidationError(`shards: cannot cut ${n} examples in ${sizes.length} classes into ${total} shards`);
    counts[best]! += Math.sign(left);
    left -= Math.sign(left);
  }
  return counts;
}

/** Indices of each label (ascending label order), each list shuffled. */
function groupByClass(labels: ArrayLike<number>, rng: () => number): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    let a = m.get(l);
    if (!a) m.set(l, (a = []));
    a.push(i);
  }
  const sorted = new Map([...m.entries()].sort((a, b) => a[0] - b[0]));
  for (const a of sorted.values()) shuffleInPlace(a, rng);
  return sorted;
}

/**
 * Per class, proportions p ~ Dir(alpha * 1_k) (normalised Gamma draws) decide how its examples are dealt
 * (Hsu et al. 2019). Redraws up to 100 times until no partition is empty, then moves single examples from
 * the largest partitions into any still-empty ones.
 */
function dirichlet(labels: ArrayLike<number>, k: number, alpha: number, rng: () => number): number[][] {
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new ValidationError(`alpha: expected a positive number, got ${alpha}`);
  const classes = [...groupByClass(labels, rng).values()];
  let parts: number[][] = [];
  for (let attempt = 0; attempt < 100; attempt++) {
    parts = Array.from({ length: k }, () => []);
    for (const idx of classes) {
      const g = Array.from({ length: k }, () => gamma(alpha, rng));
      const sum = g.reduce((a, b) => a + b, 0);
      let acc = 0, start = 0;
      for (let p = 0; p < k; p++) {
        acc += g[p]!;
        const end = p === k - 1 ? idx.length : Math.round((acc / sum) * idx.length);
        for (let j = start; j < end; j++) parts[p]!.push(idx[j]!);
        start = Math.max(start, end);
      }
    }
    if (parts.every((p) => p.length > 0)) break;
  }
  for (const p of parts) {
    if (p.length > 0) continue;
    const donor = parts.reduce((a, b) => (b.length > a.length ? b : a));
    p.push(donor.pop()!);
  }
  for (const p of parts) shuffleInPlace(p, rng);
  return parts;
}
