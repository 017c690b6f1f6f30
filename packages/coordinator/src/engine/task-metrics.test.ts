import { describe, expect, it } from 'vitest';
import { combineMetrics, stripPrefix } from './task-metrics.js';

describe('fleet task metrics', () => {
  it('combines rmse and r2 exactly from sufficient statistics (two agents = their union)', () => {
    // agent A: y = [1, 2], pred = [1, 3]; agent B: y = [4, 6], pred = [5, 6]
    const a = { sse: 1, count: 2, ysum: 3, ysumsq: 5, mse: 0.5, loss: 0.5, rmse: Math.sqrt(0.5) };
    const b = { sse: 1, count: 2, ysum: 10, ysumsq: 52, mse: 0.5, loss: 0.5, rmse: Math.sqrt(0.5) };
    const c = combineMetrics([{ n: 2, metrics: a }, { n: 2, metrics: b }], { type: 'regression', metrics: ['rmse', 'r2'], outputs: 1 });
    // union: y = [1,2,4,6], mean 3.25, sst = 14.75, sse = 2
    expect(c.rmse).toBeCloseTo(Math.sqrt(2 / 4), 12);
    expect(c.r2).toBeCloseTo(1 - 2 / 14.75, 12);
    expect(c.loss).toBeCloseTo(0.5, 12);
  });

  it('falls back to weighted means where statistics are missing and drops what no agent reported', () => {
    const c = combineMetrics([{ n: 1, metrics: { loss: 1, rmse: 2 } }, { n: 3, metrics: { loss: 3, rmse: 4 } }], { type: 'regression', metrics: ['rmse', 'r2'], outputs: 1 });
    expect(c.rmse).toBeCloseTo(3.5, 12);
    expect(c.r2).toBeUndefined();
  });

  it('strips a prefix', () => {
    expect(stripPrefix({ eval_loss: 1, train_loss: 2, eval_rmse: 3 }, 'eval_')).toEqual({ loss: 1, rmse: 3 });
  });
});
