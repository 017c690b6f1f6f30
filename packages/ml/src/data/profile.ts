/** profileTable: the schema and per-column statistics an agent reports at join (DataProfile), from which the fleet's preprocessing is built. */
import { MAX_CATEGORIES, MAX_PROFILE_JSON, ValidationError, type ColumnProfile, type DataProfile } from '@fedge/proto';
import type { RawColumn, RawTable } from './table.js';

/**
 * Neumaier-compensated sum: the error stays ~1 ulp of the total instead of growing with the count, so sums (and
 * sums of squares) of many agents combine to what one pass over the union would give.
 */
export class CompensatedSum {
  private s = 0;
  private c = 0;
  add(v: number): void {
    const t = this.s + v;
    this.c += Math.abs(this.s) >= Math.abs(v) ? this.s - t + v : v - t + this.s;
    this.s = t;
  }
  get value(): number {
    return this.s + this.c;
  }
}

/** The `limit` most frequent values (ties: value order), so every agent and the coordinator cap the same way. */
export function topValues(counts: Map<string, number>, limit = MAX_CATEGORIES): { values: Record<string, number>; truncated: boolean } {
  const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const values: Record<string, number> = {};
  for (const [v, c] of sorted.slice(0, limit)) values[v] = c;
  return { values, truncated: sorted.length > limit };
}

export function profileColumn(c: RawColumn): ColumnProfile {
  if (c.type === 'numeric') {
    const sum = new CompensatedSum(), sumSq = new CompensatedSum();
    let count = 0, min = Infinity, max = -Infinity, integer = true;
    for (const v of c.values) {
      if (Number.isNaN(v)) continue;
      count++;
      sum.add(v);
      sumSq.add(v * v);
      if (v < min) min = v;
      if (v > max) max = v;
      if (integer && !Number.isInteger(v)) integer = false;
    }
    if (!Number.isFinite(sumSq.value)) throw new ValidationError(`column '${c.name}': the sum of squares of its values overflows a double; rescale it (--scale)`);
    return { name: c.name, type: 'numeric', count, missing: c.values.length - count, sum: sum.value, sumSq: sumSq.value, min: count ? min : 0, max: count ? max : 0, integer };
  }
  if (c.type === 'categorical') {
    const counts = new Map<string, number>();
    let count = 0;
    for (const v of c.values) {
      if (v === null) continue;
      count++;
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    return { name: c.name, type: 'categorical', count, missing: c.values.length - count, ...topValues(counts) };
  }
  // Blocks (pixels) have no per-value statistics: a 224x224x3 image would need 150k of them per agent.
  let min = Infinity, max = -Infinity;
  for (const v of c.values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const n = c.values.length / c.width;
  return { name: c.name, type: 'block', width: c.width, count: n, min: n ? min : 0, max: n ? max : 0 };
}

/** The agent's DataProfile of `t` (profile the training split: its statistics are what the fleet combines). */
export function profileTable(t: RawTable): DataProfile {
  const profile: DataProfile = {
    format: t.format,
    n: t.n,
    columns: t.columns.map(profileColumn),
    targets: t.targets,
    ...(t.imageShape ? { imageShape: [...t.imageShape] } : {}),
    fingerprint: t.fingerprint,
  };
  const bytes = Buffer.byteLength(JSON.stringify(profile));
  if (bytes > MAX_PROFILE_JSON)
    throw new ValidationError(
      `${t.source}: the data profile is ${bytes} bytes, over the ${MAX_PROFILE_JSON}-byte limit (${t.columns.length} columns); ` +
        `select fewer columns with --features, or store wide numeric data as npy (more than 256 features become one block)`,
    );
  return profile;
}
