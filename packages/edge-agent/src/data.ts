/** Resolves the agent's --data spec into a local training split and a held-out split for federated evaluation. */
import { ValidationError } from '@fedge/proto';
import type { Dataset, PartitionKind } from '@fedge/ml';

export interface DataOptions {
  spec: string;
  partition: PartitionKind;
  numPartitions: number;
  partitionId: number;
  seed: number;
  alpha?: number;
  holdoutFraction: number;
}

export interface LocalData { train: Dataset; holdout: Dataset; description: string }

/**
 * Specs: `mnist` (the bundled digits, partitioned), `csv:PATH` (label,features...), `idx:IMAGES,LABELS` (MNIST IDX files).
 * Every agent of a federation derives the same partition of `mnist` from the same seed, so they never overlap.
 */
export async function loadLocalData(o: DataOptions): Promise<LocalData> {
  const ml = await import('@fedge/ml');
  let full: Dataset;
  let description: string;
  if (o.spec === 'mnist') {
    if (o.partitionId < 0 || o.partitionId >= o.numPartitions)
      throw new ValidationError(`--partition-id: ${o.partitionId} is outside 0..${o.numPartitions - 1} (--num-partitions ${o.numPartitions})`);
    const { train } = ml.loadMnist();
    const parts = ml.partitionIndices(train.y as Int32Array, {
      kind: o.partition,
      numPartitions: o.numPartitions,
      seed: o.seed,
      ...(o.alpha !== undefined ? { alpha: o.alpha } : {}),
    });
    full = ml.subset(train, parts[o.partitionId]!);
    description = `mnist ${o.partition} partition ${o.partitionId}/${o.numPartitions} (seed ${o.seed})`;
  } else if (o.spec.startsWith('csv:')) {
    full = ml.loadCsv(o.spec.slice(4));
    description = `csv ${o.spec.slice(4)}`;
  } else if (o.spec.startsWith('idx:')) {
    const [images, labels] = o.spec.slice(4).split(',');
    if (!images || !labels) throw new ValidationError('--data: use idx:IMAGES_FILE,LABELS_FILE');
    full = ml.loadIdx(images, labels);
    description = `idx ${images}`;
  } else {
    throw new ValidationError(`--data: "${o.spec}" is not a data spec; use mnist, csv:PATH or idx:IMAGES,LABELS`);
  }
  if (full.n < 2) throw new ValidationError(`--data: ${description} has ${full.n} examples; need at least 2`);
  const { train, holdout } = ml.splitHoldout(full, o.holdoutFraction, o.seed + o.partitionId);
  return { train, holdout, description };
}
