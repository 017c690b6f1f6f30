/**
 * What a run learns and from which data, as the coordinator and agents exchange it: the task (type, loss, optimizer,
 * metrics), an agent's data profile (schema, per-column statistics, fingerprint; sent at join) and the fleet's
 * preprocessing (sent with every task, saved beside models, compiled into ONNX exports). zod schemas, because all of
 * it crosses the network.
 */
import { z } from 'zod';

export const TASK_TYPES = ['classification', 'binary', 'multilabel', 'regression'] as const;
export type TaskType = (typeof TASK_TYPES)[number];
export const LOSSES = ['sparse-categorical-crossentropy', 'categorical-crossentropy', 'binary-crossentropy', 'mse', 'mae', 'huber'] as const;
export type LossName = (typeof LOSSES)[number];
export const OPTIMIZERS = ['sgd', 'momentum', 'adam', 'rmsprop', 'adagrad'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const METRICS = ['accuracy', 'auc', 'f1', 'precision', 'recall', 'mae', 'rmse', 'r2'] as const;
export type MetricName = (typeof METRICS)[number];
export const NORMALIZATIONS = ['zscore', 'minmax', 'none'] as const;
export type Normalization = (typeof NORMALIZATIONS)[number];

/** Metrics where lower is better (a stopAt on them is reached from above). */
export const LOWER_IS_BETTER: ReadonlySet<string> = new Set(['mae', 'rmse', 'loss']);

/** Losses each task type can train with; the first is the default. */
export const LOSSES_FOR: Record<TaskType, readonly LossName[]> = {
  classification: ['sparse-categorical-crossentropy', 'categorical-crossentropy'],
  binary: ['binary-crossentropy'],
  multilabel: ['binary-crossentropy'],
  regression: ['mse', 'mae', 'huber'],
};
/** Metrics each task type reports by default (the first one drives stopAt when none is named). */
export const DEFAULT_METRICS: Record<TaskType, readonly MetricName[]> = {
  classification: ['accuracy', 'f1'],
  binary: ['accuracy', 'auc', 'f1'],
  multilabel: ['accuracy', 'f1'],
  regression: ['rmse', 'mae', 'r2'],
};
export const METRICS_FOR: Record<TaskType, readonly MetricName[]> = {
  classification: ['accuracy', 'f1', 'precision', 'recall'],
  binary: ['accuracy', 'auc', 'f1', 'precision', 'recall'],
  multilabel: ['accuracy', 'f1', 'precision', 'recall'],
  regression: ['mae', 'rmse', 'r2'],
};

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

export const optimizerSchema = z.strictObject({
  name: z.enum(OPTIMIZERS, { message: `optimizer.name: use one of ${OPTIMIZERS.join(', ')}` }),
  /** Default: the run's learningRate. */
  learningRate: z.number().positive().max(100).optional(),
  /** momentum (default 0.9), rmsprop (default 0). */
  momentum: z.number().min(0).max(1).optional(),
  nesterov: z.boolean().optional(),
  /** adam */
  beta1: z.number().min(0).lt(1).optional(),
  beta2: z.number().min(0).lt(1).optional(),
  epsilon: z.number().positive().max(1).optional(),
  /** rmsprop: decay of the squared-gradient average (default 0.9). */
  rho: z.number().min(0).lt(1).optional(),
  /** adagrad (default 0.1). */
  initialAccumulatorValue: z.number().positive().optional(),
});
export type OptimizerSpec = z.output<typeof optimizerSchema>;

/** The task as agents receive it: every default resolved by the coordinator. */
export const resolvedTaskSchema = z.strictObject({
  type: z.enum(TASK_TYPES),
  loss: z.enum(LOSSES),
  /** Huber's delta (loss huber). */
  huberDelta: z.number().positive().default(1),
  optimizer: optimizerSchema.extend({ learningRate: z.number().positive().max(100) }),
  metrics: z.array(z.enum(METRICS)).max(METRICS.length),
  /** classification: number of classes (model output width); binary 1; multilabel and regression: target columns. */
  outputs: z.number().int().min(1).max(1_000_000),
  /**
   * FedProx: each agent minimizes its loss + (mu/2)·||w − w_global||² over the trainable weights, w_global the model
   * the task carried, which keeps local updates near the global model on heterogeneous data; works with any server
   * strategy. Absent or 0: no proximal term. Reported training losses exclude the term.
   */
  proximalMu: z.number().min(0).max(1e6).optional(),
});
export type ResolvedTask = z.output<typeof resolvedTaskSchema>;

// ---------------------------------------------------------------- preprocessing (coordinator -> agents)

const name = z.string().min(1).max(256);
/** Column vocabularies are capped so a free-text column cannot blow up the model's input width or a message. */
export const MAX_CATEGORIES = 1000;

export const featureSpecSchema = z.discriminatedUnion('kind', [
  /** Encoded as (x - shift) / scale; a missing value (NaN) becomes `mean` first (--missing mean). */
  z.strictObject({ name, kind: z.literal('numeric'), shift: finite, scale: finite.refine((v) => v !== 0, 'scale must not be 0'), mean: finite }),
  /** One-hot over `values` (a value outside it, or missing, encodes as all zeros). */
  z.strictObject({ name, kind: z.literal('categorical'), values: z.array(z.string().max(256)).min(1).max(MAX_CATEGORIES) }),
  /** `width` values passed through unchanged (image pixels, already-normalized arrays). */
  z.strictObject({ name, kind: z.literal('raw'), width: z.number().int().min(1).max(1 << 24) }),
]);
export type FeatureSpec = z.output<typeof featureSpecSchema>;

export const targetSpecSchema = z.discriminatedUnion('kind', [
  /** Regression value, 0/1 for binary and multilabel, or an integer class index for classification. */
  z.strictObject({ name, kind: z.literal('numeric') }),
  /** Class names: a value's index in `values` is its class (classification) or the positive class is values[1] (binary). */
  z.strictObject({ name, kind: z.literal('categorical'), values: z.array(z.string().max(256)).min(1).max(MAX_CATEGORIES) }),
]);
export type TargetSpec = z.output<typeof targetSpecSchema>;

export const preprocessingSchema = z.strictObject({
  normalization: z.enum(NORMALIZATIONS),
  /** In encoded order: the model input is their encodings concatenated. */
  features: z.array(featureSpecSchema).min(1).max(100_000),
  targets: z.array(targetSpecSchema).min(1).max(10_000),
  /** Width of the encoded input (sum of feature widths). */
  inputWidth: z.number().int().min(1),
  /** Image data: [height, width, channels] of each example (the model's input shape). */
  imageShape: z.array(z.number().int().min(1)).length(3).optional(),
});
export type Preprocessing = z.output<typeof preprocessingSchema>;

/** TrainConfig.task_json: the resolved task and the fleet's preprocessing. */
export const taskPayloadSchema = z.strictObject({ task: resolvedTaskSchema, preprocessing: preprocessingSchema });
export type TaskPayload = z.output<typeof taskPayloadSchema>;

// ---------------------------------------------------------------- data profile (agent -> coordinator, at join)

const count = z.number().int().min(0).max(1e12);
export const columnProfileSchema = z.discriminatedUnion('type', [
  z.strictObject({
    name, type: z.literal('numeric'),
    /** Non-missing values; sum, sumSq, min, max over them. */
    count, missing: count, sum: finite, sumSq: finite, min: finite, max: finite,
    /** Every value is an integer (a class index can be). */
    integer: z.boolean(),
  }),
  z.strictObject({
    name, type: z.literal('categorical'), count, missing: count,
    /** Value -> occurrences, the MAX_CATEGORIES most frequent; `truncated` when there were more. */
    values: z.record(z.string().max(256), count).refine((v) => Object.keys(v).length <= MAX_CATEGORIES, `at most ${MAX_CATEGORIES} values`),
    truncated: z.boolean(),
  }),
  /** Many values per example without per-value statistics (image pixels, mnist). */
  z.strictObject({ name, type: z.literal('block'), width: z.number().int().min(1).max(1 << 24), count, min: finite, max: finite }),
]);
export type ColumnProfile = z.output<typeof columnProfileSchema>;

export const dataProfileSchema = z.strictObject({
  /** csv, npy, images, module, mnist, idx. */
  format: z.string().min(1).max(32),
  /** Training examples (holdout excluded); the statistics are over these. */
  n: count,
  /** Every column the agent has, feature or target, in file order. */
  columns: z.array(columnProfileSchema).min(1).max(100_000),
  /** The agent's --target columns (names); the run's task.target overrides them. */
  targets: z.array(name).max(10_000),
  /** Images: [height, width, channels]. */
  imageShape: z.array(z.number().int().min(1)).length(3).optional(),
  /** sha256 (hex) over the data files or loader output and the schema: which data trained a version. */
  fingerprint: z.string().regex(/^[0-9a-f]{64}$/, 'fingerprint must be 64 lowercase hex digits'),
});
export type DataProfile = z.output<typeof dataProfileSchema>;

/** JoinRequest.data_profile_json and TrainConfig.task_json are capped: both ride in small control messages. */
export const MAX_PROFILE_JSON = 1 << 20;
