/** The fleet's task metrics from what agents report (train_*, eval_*), via @fedge/proto's exact combination. */
import { combineEvalMetrics, type MetricName, type TaskType } from '@fedge/proto';
import { weightedMetric } from '../strategy/fedavg.js';

export interface MetricPart { n: number; metrics: Record<string, number> }

/** What a run's metrics are combined as; runs without a task (MNIST, before tasks) are 10-class classification. */
export interface MetricTask { type: TaskType; metrics: readonly MetricName[]; outputs: number }
export const LEGACY_METRIC_TASK: MetricTask = { type: 'classification', metrics: ['accuracy'], outputs: 10 };

/**
 * loss plus the task's metrics, without the ones no agent could compute (NaN would serialize as null). Where the
 * sufficient statistics are missing (training metrics carry none), the example-weighted mean of the agents' values.
 */
export function combineMetrics(parts: readonly MetricPart[], task: MetricTask): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(combineEvalMetrics(parts, task))) {
    const x = Number.isFinite(v) ? v : weightedMetric(parts.map((p) => ({ weight: p.n, metrics: p.metrics })), k);
    if (x !== undefined) out[k] = x;
  }
  return out;
}

/** The metrics under `prefix` (e.g. "eval_") with the prefix removed. */
export function stripPrefix(metrics: Record<string, number>, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}
