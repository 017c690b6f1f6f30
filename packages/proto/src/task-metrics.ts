/** Task metrics combined across agents (pure; the coordinator's engine and @fedge/ml both use it, without tfjs). */
import type { MetricName, TaskType } from './task.js';

/**
 * 1 - SSE / SST with SST summed over target columns around each column's own mean. For one target this is sklearn's
 * r2_score; for several it equals r2_score(..., multioutput='variance_weighted') unless some column is constant
 * (sklearn then drops that column's error, here it still counts). Chosen because it combines exactly across agents.
 * SST 0 (constant target): 1 when the fit is exact, else 0, as sklearn's force_finite.
 */
export function r2FromStats(s: Record<string, number>, width: number): number {
  const n = s['count']! / width;
  let sst = 0;
  for (let j = 0; j < width; j++) {
    const sum = width > 1 ? s[`ysum_${j}`]! : s['ysum']!, sq = width > 1 ? s[`ysumsq_${j}`]! : s['ysumsq']!;
    // Clamp: a constant column's sq - sum²/n can round to a tiny negative.
    sst += Math.max(0, sq - (sum * sum) / n);
  }
  const sse = s['sse']!;
  // A missing statistic (an agent that did not send it) is no number, not a perfect or a zero fit.
  if (!Number.isFinite(sst) || !Number.isFinite(sse) || !Number.isFinite(n)) return NaN;
  return sst > 0 ? 1 - sse / sst : sse === 0 ? 1 : 0;
}

/**
 * Combines per-agent evaluation metrics (as `evaluate` reports them, `n` examples each) into the fleet's: `loss`
 * and each of the task's metrics. Exact: loss, accuracy and mae (example-weighted means of per-example means, every
 * agent having the same values per example), rmse and r2 (from the summed sse/count/ysum/ysumsq). Approximate:
 * auc, f1, precision and recall are example-weighted means of the agents' values, because they do not decompose
 * over examples. Agents with n = 0 or a NaN value (an agent whose holdout has one class has no AUC) are left out of
 * that metric; NaN when none is left.
 */
export function combineEvalMetrics(
  parts: readonly { n: number; metrics: Record<string, number> }[],
  task: { type: TaskType; metrics: readonly MetricName[]; outputs: number },
): Record<string, number> {
  const live = parts.filter((p) => p.n > 0);
  const mean = (key: string): number => {
    let s = 0, w = 0;
    for (const p of live) {
      const v = p.metrics[key];
      if (v === undefined || Number.isNaN(v)) continue;
      s += v * p.n;
      w += p.n;
    }
    return w > 0 ? s / w : NaN;
  };
  // A part missing a statistic makes the sum NaN: better no number than a wrong one.
  const sum = (key: string): number => live.reduce((a, p) => a + (p.metrics[key] ?? NaN), 0);
  const width = task.type === 'regression' ? task.outputs : 1;
  const stat = (key: string) => [key, sum(key)] as const;
  const out: Record<string, number> = { loss: mean('loss') };
  for (const name of task.metrics) {
    if (name === 'rmse') out[name] = live.length ? Math.sqrt(sum('sse') / sum('count')) : NaN;
    else if (name === 'r2') {
      const keys = ['sse', 'count', 'ysum', 'ysumsq'];
      if (width > 1) for (let j = 0; j < width; j++) keys.push(`ysum_${j}`, `ysumsq_${j}`);
      out[name] = live.length ? r2FromStats(Object.fromEntries(keys.map(stat)), width) : NaN;
    } else out[name] = mean(name);
  }
  return out;
}
