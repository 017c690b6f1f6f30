/**
 * The drift profile of a training split: per-feature histograms on the run's shared bins (spec.ts) and the label
 * distribution, from the raw table the agent trains on. Counts only; the coordinator sums agents' profiles into the
 * fleet reference (sumProfiles).
 */
import { addCountsInto, histogram } from './histogram.js';
import { binsOf, categoryBin, LEGACY_INPUT, type DriftSpec } from './spec.js';
import type { DataProfileCounts } from '../report/drift.js';

/** The part of a raw table a profile reads (structurally @fedge/ml's RawTable; proto does not depend on ml). */
export type ProfileColumn =
  | { name: string; type: 'numeric'; values: ArrayLike<number> }
  | { name: string; type: 'categorical'; values: readonly (string | null)[] }
  | { name: string; type: 'block'; width: number; values: ArrayLike<number> };
export interface ProfileTable { n: number; columns: readonly ProfileColumn[] }

/** The label column and how its values map to classes (the fleet's categorical values, or integer class indices). */
export interface LabelSource { column: string; values?: readonly string[] }

export function profileTable(t: ProfileTable, spec: DriftSpec, label?: LabelSource): DataProfileCounts {
  const byName = new Map(t.columns.map((c) => [c.name, c]));
  const features: DataProfileCounts['features'] = [];
  for (const f of spec.features) {
    // The legacy input is the data's one block (MNIST pixels), whatever the loader named it.
    const c = f.feature === LEGACY_INPUT ? t.columns.find((x) => x.type === 'block') : byName.get(f.feature);
    if (!c) continue;
    if (f.kind === 'categorical') {
      if (c.type !== 'categorical') continue;
      const index = new Map(f.values.map((v, i) => [v, i]));
      const counts = new Array<number>(binsOf(f)).fill(0);
      for (let i = 0; i < t.n; i++) counts[categoryBin(index, c.values[i])]!++;
      features.push({ feature: f.feature, counts });
    } else if (c.type !== 'categorical') {
      features.push({ feature: f.feature, counts: histogram(c.values, f.edges) });
    }
  }
  const labels = spec.classes && label ? labelCounts(t, spec.classes, label) : undefined;
  return { examples: t.n, features, ...(labels ? { labels } : {}) };
}

function labelCounts(t: ProfileTable, classes: number, label: LabelSource): number[] | undefined {
  const c = t.columns.find((x) => x.name === label.column);
  if (!c || c.type === 'block') return undefined;
  const counts = new Array<number>(classes).fill(0);
  const index = label.values ? new Map(label.values.map((v, i) => [v, i])) : undefined;
  for (let i = 0; i < t.n; i++) {
    const v = c.values[i];
    const k = typeof v === 'number' ? v : index && v !== null && v !== undefined ? index.get(v) : undefined;
    // Labels the encoder would refuse (outside the classes) are not counted; training would have failed on them.
    if (k !== undefined && Number.isInteger(k) && k >= 0 && k < classes) counts[k]!++;
  }
  return counts;
}

/**
 * The fleet reference: the sum of agents' profiles, feature by feature (by name; a feature whose bin count differs
 * from the first profile's is left out of the sum and named in `skipped`, never mixed). Exact: counts are integers.
 */
export function sumProfiles(profiles: readonly DataProfileCounts[]): { profile: DataProfileCounts; skipped: string[] } {
  const features = new Map<string, number[]>();
  const skipped = new Set<string>();
  let labels: number[] | undefined;
  let examples = 0;
  for (const p of profiles) {
    examples += p.examples;
    for (const f of p.features) {
      const acc = features.get(f.feature);
      if (!acc) features.set(f.feature, [...f.counts]);
      else if (acc.length === f.counts.length) addCountsInto(acc, f.counts);
      else skipped.add(f.feature);
    }
    if (p.labels) {
      if (!labels) labels = [...p.labels];
      else if (labels.length === p.labels.length) addCountsInto(labels, p.labels);
      else skipped.add('(labels)');
    }
  }
  return { profile: { examples, features: [...features].map(([feature, counts]) => ({ feature, counts })), ...(labels ? { labels } : {}) }, skipped: [...skipped] };
}
