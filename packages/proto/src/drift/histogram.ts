/**
 * Histograms on shared bin edges: counts only, so profiles from many agents (or windows) merge exactly by summing.
 *
 * `edges` are the inner edges e0 < e1 < ... < e(m-1); they make m + 1 bins: (-inf, e0), [e0, e1), ..., [e(m-1), +inf).
 * The two tails catch every value outside the fleet's range, so a shifted input is counted, never dropped.
 */
import { ValidationError } from '../errors.js';

/** The bin a value falls in (binary search; NaN has no bin: -1). */
export function binIndex(edges: readonly number[], v: number): number {
  if (Number.isNaN(v)) return -1;
  let lo = 0;
  let hi = edges.length;
  // First edge greater than v: the number of edges <= v is the bin.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * binIndex for one fixed set of edges, faster on evenly spaced edges (the usual case: z-score steps, [0, 1] tenths):
 * a guess by arithmetic, then corrected against the edges themselves, so the result is exactly binIndex's.
 */
export function binner(edges: readonly number[]): (v: number) => number {
  const m = edges.length;
  const e0 = edges[0]!;
  const step = m > 1 ? (edges[m - 1]! - e0) / (m - 1) : 0;
  const even = m > 2 && step > 0 && edges.every((e, i) => Math.abs(e - (e0 + i * step)) <= 1e-9 * Math.max(1, Math.abs(e)));
  if (!even) return (v) => binIndex(edges, v);
  return (v) => {
    if (Number.isNaN(v)) return -1;
    let i = Math.floor((v - e0) / step) + 1;
    if (!(i >= 0)) i = 0;
    else if (i > m) i = m;
    while (i > 0 && v < edges[i - 1]!) i--;
    while (i < m && v >= edges[i]!) i++;
    return i;
  };
}

/** Empty counts for `edges` (edges.length + 1 bins). */
export function emptyCounts(edges: readonly number[]): number[] {
  return new Array<number>(edges.length + 1).fill(0);
}

/** Counts of `values` on `edges`; NaN values are skipped (a missing value is not a drift signal here). */
export function histogram(values: ArrayLike<number>, edges: readonly number[]): number[] {
  const c = emptyCounts(edges);
  const bin = binner(edges);
  // An index loop: a typed array of pixels (millions of values) is read in place, never copied.
  for (let k = 0; k < values.length; k++) {
    const i = bin(values[k]!);
    if (i >= 0) c[i]!++;
  }
  return c;
}

function sameLength(a: readonly number[], b: readonly number[], what: string): void {
  if (a.length !== b.length) throw new ValidationError(`${what}: ${a.length} bins vs ${b.length}; histograms merge only on the same edges`);
}

/** a + b, bin by bin (exact: integer counts). */
export function mergeCounts(a: readonly number[], b: readonly number[], what = 'histogram'): number[] {
  sameLength(a, b, what);
  return a.map((x, i) => x + b[i]!);
}

/** Adds b into a in place (the fleet reference's running sum). */
export function addCountsInto(a: number[], b: readonly number[], what = 'histogram'): void {
  sameLength(a, b, what);
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

export const total = (c: readonly number[]): number => c.reduce((s, x) => s + x, 0);

/** Proportions of each bin (all zeros for an empty histogram). */
export function proportions(c: readonly number[]): number[] {
  const n = total(c);
  return c.map((x) => (n > 0 ? x / n : 0));
}
