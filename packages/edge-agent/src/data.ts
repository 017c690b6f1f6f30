/** Resolves the agent's --data spec into its partition's training split (profiled) and a held-out split for federated evaluation. */
import { MAX_CATEGORIES, ValidationError, type ColumnProfile, type DataProfile } from '@fedge/proto';
import type { Dataset, LoadTableOptions, PartitionKind, RawColumn, RawTable } from '@fedge/ml';

/** The --data flags: what loadTable reads (target, features, missing, ...) and how this agent takes its share. */
export interface DataOptions extends Omit<LoadTableOptions, 'baseDir'> {
  spec: string;
  partition: PartitionKind;
  numPartitions: number;
  partitionId: number;
  seed: number;
  alpha?: number;
  holdoutFraction: number;
  /** Leave out the rows splitTable(file, centralHoldout, seed) holds out: the coordinator evaluates on them (evaluation.holdout). */
  centralHoldout?: number;
}

export interface LocalData {
  /** Unencoded: the worker encodes it with the fleet's preprocessing. */
  train: RawTable;
  holdout: RawTable;
  description: string;
  /** Schema, statistics (of `train`) and fingerprint, reported at join. */
  profile: DataProfile;
}

/**
 * Specs: mnist, csv:PATH, npy:FEATURES.npy,TARGETS.npy, images:DIR, module:PATH.mjs, idx:IMAGES,LABELS (see loadTable).
 * Every format is partitioned first (every agent of a federation derives the same split from the same seed, so
 * partitions never overlap), then split into train and holdout, then the training split is profiled.
 */
export async function loadLocalData(o: DataOptions): Promise<LocalData> {
  return localDataOf(await loadFleetTable(o), o);
}

/** The whole table the --data flags name (minus the central holdout): a simulated fleet loads it once for every partition. */
export async function loadFleetTable(o: DataOptions): Promise<RawTable> {
  const ml = await import('@fedge/ml');
  const opts: LoadTableOptions = {
    ...(o.target?.length ? { target: o.target } : {}),
    ...(o.features?.length ? { features: o.features } : {}),
    ...(o.categorical?.length ? { categorical: o.categorical } : {}),
    ...(o.missing !== undefined ? { missing: o.missing } : {}),
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
    ...(o.imageSize !== undefined ? { imageSize: o.imageSize } : {}),
    ...(o.channels !== undefined ? { channels: o.channels } : {}),
  };
  let table = await ml.loadTable(o.spec, opts);
  if (o.centralHoldout !== undefined) table = ml.splitTable(table, o.centralHoldout, o.seed).train;
  return table;
}

/** This agent's partition of `table` (loadFleetTable), split into train and holdout, the training split profiled. */
export async function localDataOf(table: RawTable, o: DataOptions): Promise<LocalData> {
  const ml = await import('@fedge/ml');
  const part = ml.partitionTable(table, {
    kind: o.partition,
    numPartitions: o.numPartitions,
    partitionId: o.partitionId,
    seed: o.seed,
    ...(o.alpha !== undefined ? { alpha: o.alpha } : {}),
  });
  const description = `${o.spec}${o.numPartitions > 1 || o.spec === 'mnist' ? ` ${o.partition} partition ${o.partitionId}/${o.numPartitions} (seed ${o.seed})` : ''}`;
  if (part.n < 2) throw new ValidationError(`--data: ${description} has ${part.n} examples; need at least 2`);
  const { train, holdout } = ml.splitTable(part, o.holdoutFraction, o.seed + o.partitionId);
  return { train, holdout, description, profile: withHoldoutRange(ml.profileTable(train), holdout, ml.profileColumn) };
}

/**
 * The statistics stay those of the training rows, but category values seen only in the held-out rows are listed (with
 * count 0): the fleet's vocabularies and class names must include every value this agent will encode. Only the
 * held-out categorical columns are profiled: their values are all this needs.
 */
function withHoldoutRange(p: DataProfile, holdout: RawTable, profileColumn: (c: RawColumn) => ColumnProfile): DataProfile {
  const columns = p.columns.map((c, i): ColumnProfile => {
    const h = holdout.columns[i];
    if (c.type !== 'categorical' || h?.type !== 'categorical') return c;
    const o = profileColumn(h);
    if (o.type !== 'categorical' || o.count === 0) return c;
    const extra = Object.keys(o.values).filter((v) => !(v in c.values));
    const room = Math.max(0, MAX_CATEGORIES - Object.keys(c.values).length);
    return extra.length ? { ...c, values: { ...c.values, ...Object.fromEntries(extra.slice(0, room).map((v) => [v, 0])) }, truncated: c.truncated || extra.length > room } : c;
  });
  return { ...p, columns };
}

/**
 * TEMPORARY, until the training worker encodes with the coordinator's preprocessing: the legacy encoding (features
 * as they are, the first target as class index; defaultPreprocessing over both splits), so `--data mnist` trains
 * exactly as before. Classes: max label + 1 over both splits, at least 10 for mnist and idx (a partition may lack the
 * top digits); a target that is no class index is encoded as a regression value.
 */
export async function encodeLegacy(local: Pick<LocalData, 'train' | 'holdout'>): Promise<{ train: Dataset; holdout: Dataset }> {
  const ml = await import('@fedge/ml');
  const { train, holdout } = local;
  const both = ml.combineProfiles([train, holdout].map((t, i) => ({ agentId: String(i), name: String(i), profile: ml.profileTable(t) })));
  const pre = ml.defaultPreprocessing(train, both.columns);
  const target = pre.targets[0]!;
  const col = both.columns.find((c) => c.name === target.name);
  let task: { type: 'classification' | 'regression'; outputs: number };
  if (target.kind === 'categorical') task = { type: 'classification', outputs: target.values.length };
  else if (col?.type === 'numeric' && col.integer && col.min >= 0)
    task = { type: 'classification', outputs: Math.max(col.count > 0 ? col.max + 1 : 1, train.format === 'mnist' || train.format === 'idx' ? 10 : 1) };
  // A real-valued target cannot be a class: encoded as a value, so the agent still starts and reports its profile.
  else task = { type: 'regression', outputs: 1 };
  return { train: ml.encodeTable(train, pre, task), holdout: ml.encodeTable(holdout, pre, task) };
}
