/** Task metrics on typed arrays (accuracy, macro precision/recall/F1, ROC AUC, MAE, RMSE, R²) and their combination across agents. */
import { ValidationError, r2FromStats, type MetricName, type TaskType } from '@fedge/proto';

// Pure combination, in @fedge/proto so the coordinator's engine uses it without loading tfjs.
export { combineEvalMetrics } from '@fedge/proto';

type Values = ArrayLike<number>;

function sameLength(a: Values, b: Values): void {
  if (a.length !== b.length) throw new ValidationError(`metrics: ${a.length} true values but ${b.length} predictions; pass one prediction per true value`);
}

/** Binary and multilabel decisions: positive above 0.5, as Keras' binary_accuracy. */
const positive = (p: number): number => (p > 0.5 ? 1 : 0);

/**
 * Fraction correct. classification: `yPred` holds predicted class indices (the argmax); binary and multilabel:
 * probabilities, each label counted on its own (so multilabel is the element-wise accuracy, not the exact-match ratio).
 */
export function accuracy(type: TaskType, yTrue: Values, yPred: Values): number {
  sameLength(yTrue, yPred);
  if (type === 'regression') return NaN;
  let correct = 0;
  for (let i = 0; i < yTrue.length; i++)
    if ((type === 'classification' ? yPred[i]! : positive(yPred[i]!)) === yTrue[i]) correct++;
  return correct / yTrue.length;
}

export interface PrecisionRecallF1 { precision: number; recall: number; f1: number }
interface Counts { tp: number; fp: number; fn: number }

/** Unweighted mean over per-class scores; an undefined ratio (0/0) counts as 0, as sklearn's zero_division default. */
function macro(classes: Counts[]): PrecisionRecallF1 {
  let precision = 0, recall = 0, f1 = 0;
  for (const { tp, fp, fn } of classes) {
    precision += tp + fp > 0 ? tp / (tp + fp) : 0;
    recall += tp + fn > 0 ? tp / (tp + fn) : 0;
    f1 += tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : 0;
  }
  const k = classes.length;
  return k === 0 ? { precision: NaN, recall: NaN, f1: NaN } : { precision: precision / k, recall: recall / k, f1: f1 / k };
}

/**
 * Macro precision, recall and F1 as sklearn's average='macro' (F1 is the mean of per-class F1s). classification:
 * `yPred` are class indices, averaged over the classes present in yTrue or yPred; binary: the positive class only;
 * multilabel: `width` label columns (row-major), averaged over all of them.
 */
export function precisionRecallF1(type: TaskType, yTrue: Values, yPred: Values, width = 1): PrecisionRecallF1 {
  sameLength(yTrue, yPred);
  if (type === 'regression') return { precision: NaN, recall: NaN, f1: NaN };
  if (type === 'classification') {
    const byClass = new Map<number, Counts>();
    const of = (c: number) => byClass.get(c) ?? byClass.set(c, { tp: 0, fp: 0, fn: 0 }).get(c)!;
    for (let i = 0; i < yTrue.length; i++) {
      const t = yTrue[i]!, p = yPred[i]!;
      if (t === p) of(t).tp++;
      else {
        of(p).fp++;
        of(t).fn++;
      }
    }
    return macro([...byClass.values()]);
  }
  const cols = type === 'binary' ? 1 : width;
  const counts = Array.from({ length: cols }, () => ({ tp: 0, fp: 0, fn: 0 }));
  for (let i = 0; i < yTrue.length; i++) {
    const c = counts[i % cols]!, t = yTrue[i]!, p = positive(yPred[i]!);
    if (t === 1 && p === 1) c.tp++;
    else if (p === 1) c.fp++;
    else if (t === 1) c.fn++;
  }
  return macro(counts);
}

/** Binary ROC AUC from ranks (Mann-Whitney U), tied scores sharing their mean rank; NaN when one class is absent. */
export function rocAuc(yTrue: Values, scores: Values): number {
  sameLength(yTrue, scores);
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSum = 0, pos = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (yTrue[order[k]!] === 1) {
      rankSum += rank;
      pos++;
    }
    i = j + 1;
  }
  const neg = order.length - pos;
  return pos === 0 || neg === 0 ? NaN : (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

export function meanAbsoluteError(yTrue: Values, yPred: Values): number {
  sameLength(yTrue, yPred);
  let s = 0;
  for (let i = 0; i < yTrue.length; i++) s += Math.abs(yTrue[i]! - yPred[i]!);
  return s / yTrue.length;
}

export function rootMeanSquaredError(yTrue: Values, yPred: Values): number {
  sameLength(yTrue, yPred);
  let s = 0;
  for (let i = 0; i < yTrue.length; i++) s += (yTrue[i]! - yPred[i]!) ** 2;
  return Math.sqrt(s / yTrue.length);
}

/**
 * Sums from which RMSE and R² of a union of datasets follow exactly: squared error, count of values, and the sum and
 * sum of squares of the true values overall and (several targets) per column as `ysum_J` / `ysumsq_J`.
 */
export function regressionStats(yTrue: Values, yPred: Values, width = 1): Record<string, number> {
  sameLength(yTrue, yPred);
  const ysum = new Float64Array(width), ysumsq = new Float64Array(width);
  let sse = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i]!;
    sse += (t - yPred[i]!) ** 2;
    ysum[i % width] += t;
    ysumsq[i % width] += t * t;
  }
  const stats: Record<string, number> = {
    sse, count: yTrue.length, mse: sse / yTrue.length, ysum: ysum.reduce((a, b) => a + b, 0), ysumsq: ysumsq.reduce((a, b) => a + b, 0),
  };
  if (width > 1) for (let j = 0; j < width; j++) Object.assign(stats, { [`ysum_${j}`]: ysum[j], [`ysumsq_${j}`]: ysumsq[j] });
  return stats;
}

export function r2Score(yTrue: Values, yPred: Values, width = 1): number {
  return r2FromStats(regressionStats(yTrue, yPred, width), width);
}

/**
 * The named metrics. `yTrue`/`yPred`: classification class indices; otherwise row-major values `width` per example
 * (probabilities for binary/multilabel). A metric that does not apply to the type (auc beyond binary) is NaN.
 */
export function computeMetrics(type: TaskType, names: readonly MetricName[], yTrue: Values, yPred: Values, width = 1): Record<string, number> {
  const out: Record<string, number> = {};
  let prf: PrecisionRecallF1 | undefined;
  for (const name of names) {
    switch (name) {
      case 'accuracy': out[name] = accuracy(type, yTrue, yPred); break;
      case 'auc': out[name] = type === 'binary' ? rocAuc(yTrue, yPred) : NaN; break;
      case 'f1': case 'precision': case 'recall':
        prf ??= precisionRecallF1(type, yTrue, yPred, width);
        out[name] = prf[name];
        break;
      case 'mae': out[name] = meanAbsoluteError(yTrue, yPred); break;
      case 'rmse': out[name] = rootMeanSquaredError(yTrue, yPred); break;
      case 'r2': out[name] = r2Score(yTrue, yPred, width); break;
    }
  }
  return out;
}

