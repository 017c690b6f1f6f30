import { describe, expect, it } from 'vitest';
import {
  accuracy, combineEvalMetrics, computeMetrics, meanAbsoluteError, precisionRecallF1, r2Score, regressionStats, rocAuc, rootMeanSquaredError,
} from './metrics.js';

// Expected values from scikit-learn 1.9 (accuracy_score, precision/recall/f1_score average='macro' zero_division=0,
// roc_auc_score, mean_absolute_error, sqrt(mean_squared_error), r2_score multioutput='variance_weighted').
describe('metrics match scikit-learn', () => {
  it('classification: accuracy and macro P/R/F1 over the classes in y_true or y_pred', () => {
    const yTrue = [0, 1, 2, 2, 1, 0, 3, 1], yPred = [0, 2, 2, 2, 1, 1, 4, 1]; // class 3 only true, class 4 only predicted
    expect(accuracy('classification', yTrue, yPred)).toBe(0.625);
    const m = precisionRecallF1('classification', yTrue, yPred);
    expect(m.precision).toBeCloseTo(0.4666666666666666, 12);
    expect(m.recall).toBeCloseTo(0.4333333333333333, 12);
    expect(m.f1).toBeCloseTo(0.42666666666666664, 12);
  });

  it('binary: threshold 0.5 for accuracy/P/R/F1, rank AUC with ties averaged', () => {
    const yTrue = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0], p = [0.9, 0.4, 0.6, 0.5, 0.5, 0.2, 0.3, 0.7, 0.5, 0.1];
    expect(accuracy('binary', yTrue, p)).toBeCloseTo(0.6, 12);
    expect(precisionRecallF1('binary', yTrue, p)).toEqual({ precision: 2 / 3, recall: 0.4, f1: 0.5 });
    expect(rocAuc(yTrue, p)).toBeCloseTo(0.72, 12);
    expect(rocAuc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])).toBe(0);
    expect(rocAuc([1, 1], [0.1, 0.2])).toBeNaN();
  });

  it('multilabel: element-wise accuracy, macro over every label column', () => {
    const yTrue = [1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0];
    const p = [0.8, 0.3, 0.4, 0.2, 0.9, 0.6, 0.7, 0.4, 0.1, 0.1, 0.2, 0.3];
    expect(accuracy('multilabel', yTrue, p)).toBe(0.75);
    const m = precisionRecallF1('multilabel', yTrue, p, 3);
    expect(m.precision).toBeCloseTo(0.6666666666666666, 12);
    expect(m.recall).toBeCloseTo(0.5, 12);
    expect(m.f1).toBeCloseTo(0.5555555555555555, 12);
  });

  it('regression: MAE, RMSE, R² (one target and variance-weighted over several)', () => {
    const y = [3, -0.5, 2, 7], p = [2.5, 0, 2, 8];
    expect(meanAbsoluteError(y, p)).toBe(0.5);
    expect(rootMeanSquaredError(y, p)).toBeCloseTo(0.6123724356957945, 12);
    expect(r2Score(y, p)).toBeCloseTo(0.9486081370449679, 12);
    const y2 = [0.5, 1, -1, 1, 7, -6], p2 = [0, 2, -1, 2, 8, -5];
    expect(meanAbsoluteError(y2, p2)).toBe(0.75);
    expect(rootMeanSquaredError(y2, p2)).toBeCloseTo(0.8416254115301732, 12);
    expect(r2Score(y2, p2, 2)).toBeCloseTo(0.9382566585956417, 12);
    // Constant target: 1 for an exact fit, else 0 (sklearn's force_finite).
    expect(r2Score([2, 2, 2], [2, 2, 2])).toBe(1);
    expect(r2Score([2, 2, 2], [1, 2, 3])).toBe(0);
  });

  it('computeMetrics picks the named ones and refuses mismatched lengths', () => {
    expect(computeMetrics('binary', ['auc', 'accuracy'], [0, 1, 1], [0.2, 0.9, 0.4])).toEqual({ auc: 1, accuracy: 2 / 3 });
    expect(computeMetrics('regression', ['mae'], Float32Array.of(1, 2), Float32Array.of(2, 2))).toEqual({ mae: 0.5 });
    expect(() => accuracy('binary', [1, 0], [1])).toThrow(/2 true values but 1 predictions/);
  });
});

describe('combineEvalMetrics', () => {
  const regression = { type: 'regression', metrics: ['rmse', 'r2', 'mae'], outputs: 2 } as const;
  // Two agents' rows of a two-target regression; their union is the sklearn example above.
  const y = [0.5, 1, -1, 1, 7, -6], p = [0, 2, -1, 2, 8, -5];
  const part = (from: number, to: number) => {
    const yt = y.slice(from * 2, to * 2), yp = p.slice(from * 2, to * 2);
    return { n: to - from, metrics: { loss: to - from, ...computeMetrics('regression', regression.metrics, yt, yp, 2), ...regressionStats(yt, yp, 2) } };
  };

  it('combines regression agents exactly: RMSE and R² of the union, example-weighted MAE and loss', () => {
    const c = combineEvalMetrics([part(0, 1), part(1, 3), { n: 0, metrics: {} }], regression);
    expect(c['rmse']).toBeCloseTo(0.8416254115301732, 12);
    expect(c['r2']).toBeCloseTo(0.9382566585956417, 12);
    expect(c['mae']).toBeCloseTo(0.75, 12);
    expect(c['loss']).toBeCloseTo((1 * 1 + 2 * 2) / 3, 12);
    expect(Object.keys(c).sort()).toEqual(['loss', 'mae', 'r2', 'rmse']);
  });

  it('weights classification metrics by examples and skips NaN (an agent with one class has no AUC)', () => {
    const task = { type: 'binary', metrics: ['accuracy', 'auc'], outputs: 1 } as const;
    const c = combineEvalMetrics([
      { n: 30, metrics: { loss: 0.2, accuracy: 0.9, auc: 0.8 } },
      { n: 10, metrics: { loss: 0.6, accuracy: 0.5, auc: NaN } },
    ], task);
    expect(c).toEqual({ loss: 0.3, accuracy: 0.8, auc: 0.8 });
    expect(combineEvalMetrics([], task)['accuracy']).toBeNaN();
    // A missing statistic gives no number rather than a wrong one.
    expect(combineEvalMetrics([{ n: 3, metrics: { loss: 1 } }], { ...regression, outputs: 1 })['rmse']).toBeNaN();
  });
});
