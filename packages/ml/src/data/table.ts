/** The raw (unencoded) data an agent holds: typed columns, row subsets, a seeded holdout split and partitions. */
import { createHash } from 'node:crypto';
import { ValidationError } from '@fedge/proto';
import { holdoutIndices } from '../dataset.js';
import { partitionIndices, type PartitionKind } from '../partition.js';

export type RawColumn =
  /** NaN = missing. */
  | { name: string; type: 'numeric'; values: Float64Array }
  /** null = missing. */
  | { name: string; type: 'categorical'; values: (string | null)[] }
  /** n * width values per column (image pixels, mnist); never missing. */
  | { name: string; type: 'block'; width: number; values: Float32Array };

export interface RawTable {
  n: number;
  /** Features and targets, in file order. */
  columns: RawColumn[];
  /** Names of the target columns (--target); may be empty: the run's task.target then names them. */
  targets: string[];
  /** Image data: [height, width, channels] of each example (the block column's layout, row-major HWC). */
  imageShape?: [number, number, number];
  /** csv, npy, images, module, mnist, idx. */
  format: string;
  /** sha256 (hex) over the data and the schema; subsets and partitions derive a new one from it. */
  fingerprint: string;
  /** What was loaded (the --data spec), for messages. */
  source: string;
  /** Where each example came from, for messages naming it (see exampleWhere); absent for tables built by hand. */
  origin?: RowOrigin;
}

/**
 * Plain data (tables travel to the training worker): `rows` holds each example's 0-based row in the loaded file(s),
 * `lines` (csv) the 1-based file line and `files` (images) the file of every loaded row, indexed by `rows`.
 */
export interface RowOrigin {
  rows: Int32Array;
  lines?: Int32Array;
  files?: string[];
}

/** Example `i` for a message: "data.csv:12", "images/3/0003.png", "x.npy,y.npy: row 7", or its index in this table. */
export function exampleWhere(t: RawTable, i: number): string {
  const r = t.origin?.rows[i];
  if (r === undefined) return `${t.source}: example ${i} (0-based, after partition and holdout)`;
  if (t.origin!.lines) return `${t.source}:${t.origin!.lines[r]}`;
  if (t.origin!.files) return `${t.source}/${t.origin!.files[r]}`;
  return `${t.source}: row ${r}`;
}

/** A new fingerprint for data derived from `parent` by `how` (a partition, a split): lineage stays traceable. */
export function deriveFingerprint(parent: string, how: string): string {
  return createHash('sha256').update(parent).update('\n').update(how).digest('hex');
}

/** Width of a column in values per example (1 for numeric and categorical). */
export function columnWidth(c: RawColumn): number {
  return c.type === 'block' ? c.width : 1;
}

/** Column of `t` by name, or undefined. */
export function findColumn(t: { columns: RawColumn[] }, name: string): RawColumn | undefined {
  return t.columns.find((c) => c.name === name);
}

/** Copies the rows `idx` (in that order); `how` (default: the row count) goes into the derived fingerprint. */
export function subsetTable(t: RawTable, idx: readonly number[], how?: string): RawTable {
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= t.n) throw new ValidationError(`subsetTable: index ${i} at position ${k} is outside [0, ${t.n})`);
  }
  const columns = t.columns.map((c): RawColumn => {
    if (c.type === 'numeric') return { ...c, values: Float64Array.from(idx, (i) => c.values[i]!) };
    if (c.type === 'categorical') return { ...c, values: idx.map((i) => c.values[i]!) };
    const v = new Float32Array(idx.length * c.width);
    idx.forEach((i, k) => v.set(c.values.subarray(i * c.width, (i + 1) * c.width), k * c.width));
    return { ...c, values: v };
  });
  const origin = t.origin ? { ...t.origin, rows: Int32Array.from(idx, (i) => t.origin!.rows[i]!) } : undefined;
  return { ...t, n: idx.length, columns, ...(origin ? { origin } : {}), fingerprint: deriveFingerprint(t.fingerprint, how ?? `subset of ${idx.length} rows`) };
}

/**
 * Random (seeded) holdout of round(n * fraction) rows, both parts in the original row order, at least one training
 * row whenever n > 0: the same permutation as splitHoldout in dataset.ts, so encoded splits match the legacy ones.
 */
export function splitTable(t: RawTable, holdoutFraction: number, seed: number): { train: RawTable; holdout: RawTable } {
  const { train, holdout } = holdoutIndices(t.n, holdoutFraction, seed);
  const how = `holdout ${holdoutFraction} seed ${seed}`;
  return { train: subsetTable(t, train, `${how}: train`), holdout: subsetTable(t, holdout, `${how}: holdout`) };
}

export interface TablePartitionOptions {
  kind: PartitionKind;
  numPartitions: number;
  partitionId: number;
  seed: number;
  /** Dirichlet concentration (default 0.5). */
  alpha?: number;
}

/**
 * This agent's partition of `t` (every agent derives the same split from the same seed, so partitions never overlap).
 * shards and dirichlet group rows by the first target: its value for an integer target with at most 100 distinct
 * values (class indices), its category for a categorical one, otherwise one of 10 quantile bins; missing values form
 * a group of their own. Always partitions, even into one part (that shuffles the rows), so `--data mnist` keeps
 * exactly the split it always had.
 */
export function partitionTable(t: RawTable, o: TablePartitionOptions): RawTable {
  if (!Number.isInteger(o.partitionId) || o.partitionId < 0 || o.partitionId >= o.numPartitions)
    throw new ValidationError(`--partition-id: ${o.partitionId} is outside 0..${o.numPartitions - 1} (--num-partitions ${o.numPartitions})`);
  let labels: ArrayLike<number>;
  if (o.kind === 'iid') labels = new Float64Array(t.n);
  else {
    const col = t.targets.length > 0 ? findColumn(t, t.targets[0]!) : undefined;
    if (!col) throw new ValidationError(`--partition ${o.kind}: groups examples by their target, and ${t.source} has none; pass --target COL or use --partition iid`);
    labels = groupLabels(col);
  }
  const parts = partitionIndices(labels, { kind: o.kind, numPartitions: o.numPartitions, seed: o.seed, ...(o.alpha !== undefined ? { alpha: o.alpha } : {}) });
  const how = `partition ${o.kind} ${o.partitionId}/${o.numPartitions} seed ${o.seed}${o.alpha !== undefined ? ` alpha ${o.alpha}` : ''}`;
  return subsetTable(t, parts[o.partitionId]!, how);
}

/** Class ids for partitioning by `col` (see partitionTable). */
function groupLabels(col: RawColumn): Float64Array {
  if (col.type === 'block') throw new ValidationError(`--partition: target '${col.name}' is a block of ${col.width} values; shards and dirichlet need a class or a single value`);
  if (col.type === 'categorical') {
    const vocab = [...new Set(col.values.filter((v): v is string => v !== null))].sort();
    const id = new Map(vocab.map((v, i) => [v, i]));
    return Float64Array.from(col.values, (v) => (v === null ? -1 : id.get(v)!));
  }
  const v = col.values;
  const distinct = new Set<number>();
  let integer = true;
  for (const x of v) {
    if (Number.isNaN(x)) continue;
    if (!Number.isInteger(x)) integer = false;
    distinct.add(x);
  }
  if (integer && distinct.size <= 100) return Float64Array.from(v, (x) => (Number.isNaN(x) ? -Infinity : x));
  // A real-valued target: deciles, so "non-IID" still means agents see different ranges of it.
  const sorted = Float64Array.from(v.filter((x) => !Number.isNaN(x))).sort();
  const edges = Array.from({ length: 9 }, (_, k) => sorted[Math.floor(((k + 1) * sorted.length) / 10)]!);
  return Float64Array.from(v, (x) => (Number.isNaN(x) ? -1 : edges.filter((e) => x >= e).length));
}
