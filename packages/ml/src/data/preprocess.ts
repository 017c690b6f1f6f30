/** buildPreprocessing: the fleet's normalization, vocabularies and targets from the combined statistics (sent to every agent with each task). */
import { preprocessingSchema, ValidationError, type ColumnProfile, type FeatureSpec, type Normalization, type Preprocessing, type TargetSpec, type TaskType } from '@fedge/proto';
import { columnMoments } from './combine.js';
import { profileColumn } from './profile.js';
import type { RawTable } from './table.js';

export interface PreprocessingOptions {
  /** Target columns: names or 0-based indices (the run's task.target, else the agents' --target). */
  targets: string[];
  /** Feature columns (names or indices); default: every other column. */
  features?: string[];
  normalization: Normalization;
  taskType: TaskType;
  /** The model's input image shape [h, w, c]; agents resize their images to it. Default: the data's. */
  imageShape?: [number, number, number];
}

function columnIndex(ref: string, columns: readonly ColumnProfile[], what: string): number {
  const byName = columns.findIndex((c) => c.name === ref);
  if (byName >= 0) return byName;
  if (/^\d+$/.test(ref) && Number(ref) < columns.length) return Number(ref);
  const names = columns.map((c) => c.name);
  throw new ValidationError(`${what} '${ref}' is not a column of the fleet's data; its columns are: ${names.slice(0, 40).join(', ')}${names.length > 40 ? ` … (${names.length - 40} more)` : ''}`);
}

function featureSpec(c: ColumnProfile, normalization: Normalization, imageShape: readonly number[] | undefined, blocks: number): FeatureSpec {
  if (c.type === 'numeric') {
    const m = columnMoments(c);
    const [shift, scale] = normalization === 'zscore' ? [m.mean, m.std] : normalization === 'minmax' ? [m.min, m.max - m.min] : [0, 1];
    // A constant column has nothing to scale by; 1 keeps it finite (it encodes as 0 under zscore/minmax).
    return { name: c.name, kind: 'numeric', shift, scale: scale > 0 ? scale : 1, mean: m.mean };
  }
  if (c.type === 'categorical') {
    const values = Object.keys(c.values).sort();
    if (values.length === 0) throw new ValidationError(`feature '${c.name}' has no values on any agent (every cell is missing); leave it out with --features`);
    return { name: c.name, kind: 'categorical', values };
  }
  // The image block takes the model's input shape (agents resize to it); other blocks pass through as they are.
  const width = imageShape && blocks === 1 ? imageShape[0]! * imageShape[1]! * imageShape[2]! : c.width;
  return { name: c.name, kind: 'raw', width };
}

function targetSpec(c: ColumnProfile, task: TaskType): TargetSpec {
  if (c.type === 'block') throw new ValidationError(`target '${c.name}' is a block of ${c.width} values; a target is one value per example`);
  if (c.type === 'categorical') {
    const values = Object.keys(c.values).sort();
    if (task === 'regression') throw new ValidationError(`target '${c.name}' is categorical (${values.slice(0, 5).join(', ')}…); regression needs a numeric target: use task type classification or binary`);
    if ((task === 'binary' || task === 'multilabel') && values.length !== 2)
      throw new ValidationError(`target '${c.name}' has ${values.length} values (${values.slice(0, 10).join(', ')}${values.length > 10 ? ', …' : ''}); ${task} needs exactly 2 (the second in sorted order is the positive class); use classification for more`);
    if (c.truncated) throw new ValidationError(`target '${c.name}' has more than ${values.length} distinct values; that is no classification target`);
    return { name: c.name, kind: 'categorical', values };
  }
  if (task === 'classification' && (!c.integer || c.min < 0))
    throw new ValidationError(`target '${c.name}' holds ${c.integer ? 'negative values' : 'non-integers'} (min ${c.min}, max ${c.max}); classification needs class indices 0, 1, 2, … (or --categorical ${c.name} for class names); use regression for a real value`);
  if ((task === 'binary' || task === 'multilabel') && (!c.integer || c.min < 0 || c.max > 1))
    throw new ValidationError(`target '${c.name}' ranges over [${c.min}, ${c.max}]${c.integer ? '' : ' with non-integers'}; ${task} needs 0/1 values`);
  return { name: c.name, kind: 'numeric' };
}

/** Values per example the features encode to: 1 per numeric, one per vocabulary value, a raw block's width. */
export function encodedWidth(features: readonly FeatureSpec[]): number {
  return features.reduce((a, f) => a + (f.kind === 'numeric' ? 1 : f.kind === 'categorical' ? f.values.length : f.width), 0);
}

/** The preprocessing every agent applies (and the exported model carries), from the fleet's combined columns. */
export function buildPreprocessing(columns: ColumnProfile[], o: PreprocessingOptions): Preprocessing {
  if (o.targets.length === 0) throw new ValidationError(`no target: name the target column (task.target in the run config, or --target on the agents); columns: ${columns.map((c) => c.name).slice(0, 40).join(', ')}`);
  const targets = [...new Set(o.targets.map((t) => columnIndex(t, columns, 'target')))];
  if (o.taskType === 'classification' || o.taskType === 'binary') {
    if (targets.length !== 1) throw new ValidationError(`${o.taskType} takes one target column, got ${targets.length}: ${targets.map((t) => columns[t]!.name).join(', ')}; use multilabel or regression for several`);
  }
  const features = o.features?.length ? [...new Set(o.features.map((f) => columnIndex(f, columns, 'feature')))] : columns.map((_, i) => i).filter((i) => !targets.includes(i));
  for (const f of features) if (targets.includes(f)) throw new ValidationError(`'${columns[f]!.name}' is both a feature and a target`);
  if (features.length === 0) throw new ValidationError('no feature columns: every column is a target');
  const blocks = features.filter((f) => columns[f]!.type === 'block').length;
  const featureSpecs = features.map((f) => featureSpec(columns[f]!, o.normalization, o.imageShape, blocks));
  const pre = {
    normalization: o.normalization,
    features: featureSpecs,
    targets: targets.map((t) => targetSpec(columns[t]!, o.taskType)),
    inputWidth: encodedWidth(featureSpecs),
    ...(o.imageShape ? { imageShape: [...o.imageShape] } : {}),
  };
  const checked = preprocessingSchema.safeParse(pre);
  if (!checked.success) throw new ValidationError(`preprocessing: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return checked.data;
}

/** Classes of a classification task: the first target's vocabulary, or max + 1 of an integer target. */
export function classesOf(pre: Preprocessing, columns: readonly ColumnProfile[]): number {
  const t = pre.targets[0]!;
  if (t.kind === 'categorical') return t.values.length;
  const c = columns.find((col) => col.name === t.name);
  if (!c || c.type !== 'numeric') throw new ValidationError(`target '${t.name}' is not a numeric column of the fleet's data`);
  if (!c.integer || c.min < 0 || c.count === 0) throw new ValidationError(`target '${t.name}' is not a class index column (integers >= 0; min ${c.min}, max ${c.max})`);
  return c.max + 1;
}

/**
 * For legacy tasks that carry no preprocessing: features as they are (normalization none, a missing value becomes
 * the local mean), the first target numeric (or the first column when the table names none: legacy csv put the label
 * first). MNIST encodes to exactly the Dataset it always had. `columns`: statistics to use (default: t's own).
 */
export function defaultPreprocessing(t: RawTable, columns: ColumnProfile[] = t.columns.map(profileColumn)): Preprocessing {
  const target = t.targets[0] ?? t.columns[0]!.name;
  const type: TaskType = columns.find((c) => c.name === target)?.type === 'categorical' ? 'classification' : 'regression';
  const features = t.columns.filter((c) => c.name !== target && !t.targets.includes(c.name)).map((c) => c.name);
  return buildPreprocessing(columns, { targets: [target], features, normalization: 'none', taskType: type, ...(t.imageShape ? { imageShape: t.imageShape } : {}) });
}
