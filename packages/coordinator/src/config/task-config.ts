/** The run config's task, stopAt and evaluation blocks, their cross-checks, and the defaults that resolve a task for agents. */
import { z } from 'zod';
import {
  DEFAULT_METRICS,
  LOSSES,
  LOSSES_FOR,
  LOWER_IS_BETTER,
  METRICS,
  METRICS_FOR,
  NORMALIZATIONS,
  TASK_TYPES,
  ValidationError,
  optimizerSchema,
  type MetricName,
  type Normalization,
  type ResolvedTask,
  type TaskType,
} from '@fedge/proto';

const column = z.union([z.string().min(1).max(256), z.number().int().min(0).max(1_000_000)]);

export const taskConfigSchema = z.strictObject({
  type: z.enum(TASK_TYPES, { message: `task.type: use one of ${TASK_TYPES.join(', ')}` }).default('classification'),
  /** Name or 0-based index of the label column(s); default: the agents' --target. Several for multilabel/multi-output. */
  target: z.union([column, z.array(column).min(1).max(10_000)]).optional(),
  /** Feature columns; default: every column that is not a target. */
  features: z.array(z.string().min(1).max(256)).min(1).max(100_000).optional(),
  loss: z.enum(LOSSES, { message: `task.loss: use one of ${LOSSES.join(', ')}` }).optional(),
  huberDelta: z.number().positive().max(1e6).optional(),
  optimizer: optimizerSchema.optional(),
  metrics: z.array(z.enum(METRICS, { message: `task.metrics: use any of ${METRICS.join(', ')}` })).min(1).max(METRICS.length).optional(),
  /** Default: zscore for tabular data, none for images and other block data. */
  normalization: z.enum(NORMALIZATIONS, { message: `task.normalization: use one of ${NORMALIZATIONS.join(', ')}` }).optional(),
  /**
   * Your own normalization of numeric columns ({ mean, std } for zscore, { min, max } for minmax): used instead of the
   * fleet's statistics, so a private run spends no privacy on them.
   */
  statistics: z.record(z.string().min(1).max(256), z.union([
    z.strictObject({ mean: z.number().refine(Number.isFinite, 'must be finite'), std: z.number().positive('std must be > 0') }),
    z.strictObject({ min: z.number().refine(Number.isFinite, 'must be finite'), max: z.number().refine(Number.isFinite, 'must be finite') }),
  ], { message: 'task.statistics: give each column { "mean": m, "std": s } (zscore) or { "min": a, "max": b } (minmax)' })).optional(),
});
export type TaskConfig = z.output<typeof taskConfigSchema>;

const STOP_METRICS = [...METRICS, 'loss'] as const;
export const stopAtSchema = z.strictObject({
  metric: z.enum(STOP_METRICS, { message: `stopAt.metric: use one of ${STOP_METRICS.join(', ')}` }),
  value: z.number().refine(Number.isFinite, 'stopAt.value: must be a finite number'),
});
export type StopAt = z.output<typeof stopAtSchema>;

export const evaluationSchema = z.strictObject({
  /** A data spec the coordinator reads (csv:PATH, npy:X,Y, images:DIR, module:PATH.mjs), as for fedge-agent --data. */
  data: z.string().min(1).max(4096),
  target: z.union([column, z.array(column).min(1)]).optional(),
  missing: z.enum(['error', 'drop', 'mean']).default('error'),
  /** Evaluate only on the rows a seeded split holds out (what `fedge demo` keeps back from its agents). */
  holdout: z.strictObject({ fraction: z.number().gt(0).lt(1), seed: z.number().int().min(0) }).optional(),
});
export type EvaluationConfig = z.output<typeof evaluationSchema>;

interface TaskChecked {
  task?: TaskConfig | undefined;
  stopAt?: StopAt | undefined;
  targetAccuracy?: number | undefined;
  model: unknown;
}

/** Cross-field checks zod cannot express: loss and metrics fit the task type, stopAt names a metric the task reports. */
export function checkTaskConfig(c: TaskChecked): void {
  const type = c.task?.type ?? 'classification';
  const fail = (msg: string): never => {
    throw new ValidationError(`invalid run config: ${msg}`);
  };
  if (c.task?.loss && !LOSSES_FOR[type].includes(c.task.loss))
    fail(`task.loss: "${c.task.loss}" does not fit task.type ${type}; use ${LOSSES_FOR[type].join(' or ')}`);
  for (const m of c.task?.metrics ?? [])
    if (!METRICS_FOR[type].includes(m)) fail(`task.metrics: "${m}" is not a ${type} metric; use any of ${METRICS_FOR[type].join(', ')}`);
  if (c.task?.huberDelta !== undefined && (c.task.loss ?? LOSSES_FOR[type][0]) !== 'huber') fail('task.huberDelta: only applies to loss "huber"');
  if (c.targetAccuracy !== undefined && type === 'regression')
    fail('targetAccuracy: a regression task has no accuracy; use "stopAt": { "metric": "rmse", "value": ... }');
  if (c.stopAt && c.stopAt.metric !== 'loss' && !METRICS_FOR[type].includes(c.stopAt.metric))
    fail(`stopAt.metric: "${c.stopAt.metric}" is not a ${type} metric; use loss or one of ${METRICS_FOR[type].join(', ')}`);
  for (const [col, st] of Object.entries(c.task?.statistics ?? {})) {
    const norm = c.task?.normalization ?? 'zscore';
    if ('mean' in st && norm !== 'zscore') fail(`task.statistics.${col}: { mean, std } is for normalization zscore; with ${norm} give { min, max }`);
    if ('min' in st && norm !== 'minmax') fail(`task.statistics.${col}: { min, max } is for normalization minmax; with ${norm} give { mean, std }`);
    if ('min' in st && !(st.max > st.min)) fail(`task.statistics.${col}: max must be greater than min`);
  }
  if (c.stopAt && c.targetAccuracy !== undefined) fail('stopAt and targetAccuracy: give one of them (targetAccuracy a is stopAt { "metric": "accuracy", "value": a })');
  if (typeof c.model === 'string' && c.model.startsWith('mnist-') && c.task && c.task.type !== 'classification')
    fail(`task.type: the built-in ${c.model} is a 10-class softmax classifier; use { "builtin": "mlp" } or your own model for ${c.task.type}`);
}

/** The metrics a run reports: the configured ones, else the task type's defaults (with accuracy first for classification). */
export function metricsOf(task: TaskConfig | undefined): MetricName[] {
  return [...(task?.metrics ?? DEFAULT_METRICS[task?.type ?? 'classification'])];
}

/** The stop rule: stopAt, else targetAccuracy as accuracy from below. */
export function stopRule(c: { stopAt?: StopAt | undefined; targetAccuracy?: number | undefined }): { metric: string; value: number; lowerIsBetter: boolean } | undefined {
  if (c.stopAt) return { ...c.stopAt, lowerIsBetter: LOWER_IS_BETTER.has(c.stopAt.metric) };
  if (c.targetAccuracy !== undefined) return { metric: 'accuracy', value: c.targetAccuracy, lowerIsBetter: false };
  return undefined;
}

/** Every default filled in, as agents receive it; `outputs` comes from the data step (classes or target columns). */
export function resolveTask(task: TaskConfig | undefined, runLearningRate: number, outputs: number): ResolvedTask {
  const type: TaskType = task?.type ?? 'classification';
  return {
    type,
    loss: task?.loss ?? LOSSES_FOR[type][0]!,
    huberDelta: task?.huberDelta ?? 1,
    optimizer: { ...(task?.optimizer ?? { name: 'sgd' }), learningRate: task?.optimizer?.learningRate ?? runLearningRate },
    metrics: metricsOf(task),
    outputs,
  };
}

/** Default normalization: zscore for tabular columns, none when the features are images or other blocks. */
export function normalizationOf(task: TaskConfig | undefined, hasBlocks: boolean): Normalization {
  return task?.normalization ?? (hasBlocks ? 'none' : 'zscore');
}

/** Target column names from the config (indices resolved against the fleet's column names). */
export function targetNames(task: TaskConfig | undefined, columns: readonly string[]): string[] | undefined {
  const t = task?.target;
  if (t === undefined) return undefined;
  return (Array.isArray(t) ? t : [t]).map((x) => {
    if (typeof x === 'number') {
      const name = columns[x];
      if (name === undefined) throw new ValidationError(`task.target: column index ${x} is out of range; the data has ${columns.length} columns (${columns.slice(0, 20).join(', ')})`);
      return name;
    }
    // "0" from a command line is an index unless a column is named "0" (as fedge-agent --target reads it).
    if (!columns.includes(x) && /^\d+$/.test(x) && columns[Number(x)] !== undefined) return columns[Number(x)]!;
    if (!columns.includes(x)) throw new ValidationError(`task.target: no column "${x}" in the agents' data; columns are ${columns.slice(0, 30).join(', ')}`);
    return x;
  });
}
