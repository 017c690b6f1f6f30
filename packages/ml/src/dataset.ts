/** In-memory encoded datasets (row-major float32 features, targets per task type) and index-based views of them. */
import { ValidationError } from '@fedge/proto';
import { createRng, shuffleInPlace } from './rng.js';

export interface Dataset {
  /** Row-major, n * features values (encoded: normalized, one-hot; what the model takes). */
  x: Float32Array;
  /**
   * Classification: one class index per example (Int32Array). Binary, multilabel, regression: n * targets values
   * (Float32Array), 0/1 for binary and multilabel.
   */
  y: Int32Array | Float32Array;
  n: number;
  features: number;
  /** Classification: number of classes. Other tasks: 0. */
  numClasses: number;
  /** Target values per example (columns of y); default 1. */
  targets?: number;
}

/** Columns of `y` per example. */
export function targetWidth(ds: Dataset): number {
  return ds.targets ?? 1;
}

/** Copies the rows `idx` (in that order) into a new dataset; numClasses is kept so models still fit. */
export function subset(ds: Dataset, idx: readonly number[]): Dataset {
  const f = ds.features;
  const t = targetWidth(ds);
  const x = new Float32Array(idx.length * f);
  const y = ds.y instanceof Int32Array ? new Int32Array(idx.length * t) : new Float32Array(idx.length * t);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= ds.n) throw new ValidationError(`subset: index ${i} at position ${k} is outside [0, ${ds.n})`);
    x.set(ds.x.subarray(i * f, (i + 1) * f), k * f);
    y.set(ds.y.subarray(i * t, (i + 1) * t), k * t);
  }
  return { x, y, n: idx.length, features: f, numClasses: ds.numClasses, ...(ds.targets !== undefined ? { targets: ds.targets } : {}) };
}

/**
 * Random (seeded) holdout of round(n * fraction) rows; both parts keep the original row order.
 * Keeps at least one training row whenever n > 0.
 */
export function splitHoldout(ds: Dataset, fraction: number, seed: number): { train: Dataset; holdout: Dataset } {
  const { train, holdout } = holdoutIndices(ds.n, fraction, seed);
  return { train: subset(ds, train), holdout: subset(ds, holdout) };
}

/** The row indices of a seeded holdout split (both sorted): one permutation for encoded datasets and raw tables alike. */
export function holdoutIndices(n: number, fraction: number, seed: number): { train: number[]; holdout: number[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new ValidationError(`holdout: expected a fraction in [0, 1), got ${fraction}`);
  const perm = Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(perm, createRng(seed));
  const k = Math.min(Math.round(n * fraction), Math.max(0, n - 1));
  return { holdout: perm.slice(0, k).sort((a, b) => a - b), train: perm.slice(k).sort((a, b) => a - b) };
}

/** Counts of each label, length numClasses. */
export function labelCounts(y: Int32Array | Float32Array, numClasses: number): number[] {
  const c = new Array<number>(numClasses).fill(0);
  for (const v of y) c[v] = (c[v] ?? 0) + 1;
  return c;
}
