/**
 * Which histograms a run's drift profiles hold, derived from what every agent of the run already shares (the task
 * payload: the fleet's preprocessing and task), so all agents and the coordinator bin alike without sending edges.
 *
 * Edges are in raw feature units (what a served model takes): a numeric feature normalized by z-score gets
 * shift + scale x [-2, -1.5, ..., 2] (its fleet mean and std), by min-max shift + scale x [0, 0.1, ..., 1] (its fleet
 * range), each with open tails; with normalization "none" the fleet's spread is not in the payload, so numeric features
 * are not tracked. A categorical feature gets a bin per fleet value plus bin 0 for anything else or missing. A raw
 * block (image pixels) is one feature whose values are pooled on [0, 0.1, ..., 1]. Labels and predictions: a bin per
 * class (classification: argmax; binary: the 0.5 threshold); regression and multilabel have none.
 */
import type { Preprocessing, ResolvedTask } from '../task.js';

export const ZSCORE_STEPS = [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2];
export const UNIT_EDGES = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
/** A run without a task payload (MNIST-style): its one input, pooled like pixels. */
export const LEGACY_INPUT = 'input';

export type DriftFeature =
  | { feature: string; kind: 'numeric'; edges: number[] }
  | { feature: string; kind: 'categorical'; values: string[] }
  | { feature: string; kind: 'raw'; edges: number[] };

export interface DriftSpec {
  features: DriftFeature[];
  /** Bins of the label and prediction distributions (classes); absent: not tracked. */
  classes?: number;
  /** Binary: one output, a probability, thresholded at 0.5 for the predicted class. */
  binary?: boolean;
}

export function driftSpec(payload?: { task: Pick<ResolvedTask, 'type' | 'outputs'>; preprocessing: Preprocessing }): DriftSpec {
  if (!payload) return { features: [{ feature: LEGACY_INPUT, kind: 'raw', edges: UNIT_EDGES }] };
  const { task, preprocessing: pre } = payload;
  const features: DriftFeature[] = [];
  for (const f of pre.features) {
    if (f.kind === 'categorical') features.push({ feature: f.name, kind: 'categorical', values: f.values });
    else if (f.kind === 'raw') features.push({ feature: f.name, kind: 'raw', edges: UNIT_EDGES });
    else if (pre.normalization !== 'none') {
      const steps = pre.normalization === 'zscore' ? ZSCORE_STEPS : UNIT_EDGES;
      features.push({ feature: f.name, kind: 'numeric', edges: steps.map((z) => f.shift + f.scale * z) });
    }
  }
  const classes = task.type === 'classification' ? task.outputs : task.type === 'binary' ? 2 : undefined;
  return { features, ...(classes ? { classes } : {}), ...(task.type === 'binary' ? { binary: true } : {}) };
}

/** Bins of a feature's histogram. */
export function binsOf(f: DriftFeature): number {
  return f.kind === 'categorical' ? f.values.length + 1 : f.edges.length + 1;
}

/** A categorical value's bin: 1 + its index in the fleet's values, 0 for any other value or a missing one. */
export function categoryBin(index: ReadonlyMap<string, number>, v: string | null | undefined): number {
  const i = v === null || v === undefined ? undefined : index.get(v);
  return i === undefined ? 0 : i + 1;
}

/** The predicted class of one output row (argmax; binary: p >= 0.5). */
export function predictedClass(row: ArrayLike<number>, binary: boolean): number {
  if (binary) return row[0]! >= 0.5 ? 1 : 0;
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
