/**
 * Combines the task metrics agents report (train_*, eval_*) into the fleet's: exact where sufficient statistics
 * travel (accuracy, mae, rmse via mse, r2 via sse and target sums), example-weighted means otherwise (auc, f1,
 * precision, recall: not decomposable from per-agent values).
 */

export interface MetricPart { n: number; metrics: Record<string, number> }

/** Sufficient statistics agents send next to their metrics (over all target values of their held-out split). */
const STATS = ['mse', 'sse', 'ysum', 'ysumsq', 'count'] as const;

function weightedMean(parts: readonly MetricPart[], key: string): number | undefined {
  let s = 0, w = 0;
  for (const p of parts) {
    const v = p.metrics[key];
    if (v === undefined || !Number.isFinite(v) || !(p.n > 0)) continue;
    s += v * p.n;
    w += p.n;
  }
  return w > 0 ? s / w : undefined;
}

function total(parts: readonly MetricPart[], key: string): number | undefined {
  let s = 0;
  for (const p of parts) {
    const v = p.metrics[key];
    if (v === undefined || !Number.isFinite(v)) return undefined;
    s += v;
  }
  return s;
}

/**
 * `parts`: per agent, its example count and its metrics without prefix (loss, accuracy, rmse, mse, sse, ...).
 * Returns loss plus every metric in `names` that can be computed.
 */
export function combineMetrics(parts: readonly MetricPart[], names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  const loss = weightedMean(parts, 'loss');
  if (loss !== undefined) out.loss = loss;
  for (const name of names) {
    let v: number | undefined;
    if (name === 'rmse') {
      const mse = weightedMean(parts, 'mse');
      v = mse !== undefined ? Math.sqrt(mse) : weightedMean(parts, 'rmse');
    } else if (name === 'r2') {
      const sse = total(parts, 'sse'), ys = total(parts, 'ysum'), ys2 = total(parts, 'ysumsq'), n = total(parts, 'count');
      if (sse !== undefined && ys !== undefined && ys2 !== undefined && n !== undefined && n > 0) {
        const sst = ys2 - (ys * ys) / n;
        v = sst > 0 ? 1 - sse / sst : undefined;
      } else v = weightedMean(parts, 'r2');
    } else v = weightedMean(parts, name);
    if (v !== undefined && Number.isFinite(v)) out[name] = v;
  }
  return out;
}

/** The metrics under `prefix` (e.g. "eval_") with the prefix removed. */
export function stripPrefix(metrics: Record<string, number>, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

export { STATS as SUFFICIENT_STATS };
