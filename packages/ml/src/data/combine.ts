/** combineProfiles: the coordinator's statistics step; agents whose schema differs from the fleet's are refused, the rest combine exactly. */
import { MAX_CATEGORIES, ValidationError, type ColumnProfile, type DataProfile } from '@fedge/proto';
import { CompensatedSum, topValues } from './profile.js';

export interface ProfileEntry {
  agentId: string;
  name: string;
  profile: DataProfile;
}

export interface CombinedProfiles<E extends ProfileEntry = ProfileEntry> {
  /** The fleet's columns with statistics over every accepted agent. */
  columns: ColumnProfile[];
  /** Training examples over the accepted agents. */
  n: number;
  /** The fleet's image shape, when its data are images. */
  imageShape?: [number, number, number];
  accepted: E[];
  refused: { agentId: string; name: string; reason: string }[];
}

function describe(c: ColumnProfile): string {
  return `'${c.name}' (${c.type === 'block' ? `block of ${c.width}` : c.type})`;
}

const shapeText = (s: readonly number[] | undefined): string => (s ? s.join('x') : 'none');

/** Identity of a schema: column names, types, block widths and the image shape (statistics and targets aside). */
function schemaKey(p: DataProfile): string {
  return JSON.stringify([p.columns.map((c) => [c.name, c.type, c.type === 'block' ? c.width : 0]), p.imageShape ?? null]);
}

/** Why `p`'s schema is not `ref`'s, naming the first differing column (1-based, as in file:line:column); undefined when equal. */
export function schemaDifference(p: DataProfile, ref: DataProfile): string | undefined {
  const len = Math.min(p.columns.length, ref.columns.length);
  for (let i = 0; i < len; i++) {
    const a = p.columns[i]!, b = ref.columns[i]!;
    if (a.name !== b.name || a.type !== b.type || (a.type === 'block' && b.type === 'block' && a.width !== b.width))
      return `column ${i + 1} is ${describe(a)} here, ${describe(b)} in the fleet's schema`;
  }
  if (p.columns.length !== ref.columns.length) {
    const extra = p.columns.length > ref.columns.length;
    const c = (extra ? p : ref).columns[len]!;
    return `${p.columns.length} columns here, ${ref.columns.length} in the fleet's schema (column ${len + 1} ${describe(c)} is ${extra ? 'only here' : 'missing here'})`;
  }
  if (shapeText(p.imageShape) !== shapeText(ref.imageShape)) return `images are ${shapeText(p.imageShape)} here, ${shapeText(ref.imageShape)} in the fleet's schema`;
  return undefined;
}

function merge(a: ColumnProfile, b: ColumnProfile, acc: Map<string, CompensatedSum[]>, key: string): ColumnProfile {
  if (a.type === 'numeric' && b.type === 'numeric') {
    let sums = acc.get(key);
    if (!sums) {
      acc.set(key, (sums = [new CompensatedSum(), new CompensatedSum()]));
      sums[0]!.add(a.sum);
      sums[1]!.add(a.sumSq);
    }
    sums[0]!.add(b.sum);
    sums[1]!.add(b.sumSq);
    const count = a.count + b.count;
    const min = a.count === 0 ? b.min : b.count === 0 ? a.min : Math.min(a.min, b.min);
    const max = a.count === 0 ? b.max : b.count === 0 ? a.max : Math.max(a.max, b.max);
    return { ...a, count, missing: a.missing + b.missing, sum: sums[0]!.value, sumSq: sums[1]!.value, min, max, integer: a.integer && b.integer };
  }
  if (a.type === 'categorical' && b.type === 'categorical') {
    const counts = new Map(Object.entries(a.values));
    for (const [v, c] of Object.entries(b.values)) counts.set(v, (counts.get(v) ?? 0) + c);
    const top = topValues(counts, MAX_CATEGORIES);
    return { ...a, count: a.count + b.count, missing: a.missing + b.missing, values: top.values, truncated: a.truncated || b.truncated || top.truncated };
  }
  if (a.type === 'block' && b.type === 'block') {
    const min = a.count === 0 ? b.min : b.count === 0 ? a.min : Math.min(a.min, b.min);
    const max = a.count === 0 ? b.max : b.count === 0 ? a.max : Math.max(a.max, b.max);
    return { ...a, count: a.count + b.count, min, max };
  }
  throw new ValidationError(`column '${a.name}': cannot combine ${a.type} with ${b.type}`);
}

/**
 * The reference schema is the one most agents share (ties: the one of the agent first by name); every other agent is
 * refused with the first differing column named. Statistics of the accepted agents combine exactly: counts and sums
 * add (compensated), min/max, integer if all are, categorical counts add and are re-capped to MAX_CATEGORIES.
 */
export function combineProfiles<E extends ProfileEntry>(entries: readonly E[]): CombinedProfiles<E> {
  const byName = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
  const votes = new Map<string, number>();
  for (const e of byName) votes.set(schemaKey(e.profile), (votes.get(schemaKey(e.profile)) ?? 0) + 1);
  let refKey: string | undefined;
  for (const e of byName) {
    const k = schemaKey(e.profile);
    if (refKey === undefined || votes.get(k)! > votes.get(refKey)!) refKey = k;
  }
  const ref = byName.find((e) => schemaKey(e.profile) === refKey)?.profile;
  const accepted: E[] = [];
  const refused: CombinedProfiles['refused'] = [];
  let columns: ColumnProfile[] = [];
  let n = 0;
  const sums = new Map<string, CompensatedSum[]>();
  for (const e of entries) {
    const diff = schemaDifference(e.profile, ref!);
    if (diff !== undefined) {
      refused.push({ agentId: e.agentId, name: e.name, reason: `data schema differs from the fleet's: ${diff}` });
      continue;
    }
    columns = accepted.length === 0 ? e.profile.columns.map((c) => structuredClone(c)) : columns.map((c, i) => merge(c, e.profile.columns[i]!, sums, String(i)));
    n += e.profile.n;
    accepted.push(e);
  }
  const shape = ref?.imageShape;
  return { columns, n, ...(shape ? { imageShape: [shape[0]!, shape[1]!, shape[2]!] } : {}), accepted, refused };
}

/** Mean, population std, min and max of a combined numeric column (0s for a column with no values). */
export function columnMoments(col: Extract<ColumnProfile, { type: 'numeric' }>): { mean: number; std: number; min: number; max: number } {
  if (col.count === 0) return { mean: 0, std: 0, min: 0, max: 0 };
  const mean = col.sum / col.count;
  // E[x^2] - mean^2 loses digits when |mean| >> std; the compensated sums keep sum and sumSq to ~1 ulp, so the
  // relative error of the variance is ~1e-16 * (mean/std)^2: within 1e-6 of a centralized pass up to mean/std ~ 1e5.
  const variance = Math.max(0, (col.sumSq - mean * col.sum) / col.count);
  return { mean, std: Math.sqrt(variance), min: col.min, max: col.max };
}
