import { describe, expect, it } from 'vitest';
import { FedAvg, applyDelta, sampleAgents, weightedMetric } from './fedavg.js';
import { createRng } from '@fedge/proto';

describe('fedavg helpers', () => {
  it('samples max(min, ceil(fraction * n)) distinct agents reproducibly', () => {
    const pool = Array.from({ length: 10 }, (_, i) => i);
    const a = sampleAgents(pool, 0.3, 2, createRng(1));
    expect(a).toHaveLength(3);
    expect(new Set(a).size).toBe(3);
    expect(sampleAgents(pool, 0.3, 2, createRng(1))).toEqual(a);
    expect(sampleAgents(pool, 0.05, 4, createRng(2))).toHaveLength(4);
    expect(sampleAgents(pool.slice(0, 2), 1, 5, createRng(3))).toHaveLength(2);
  });

  it('weights metrics by examples and ignores missing or non-finite values', () => {
    const m = weightedMetric(
      [{ weight: 1, metrics: { acc: 1 } }, { weight: 3, metrics: { acc: 0 } }, { weight: 5, metrics: {} }, { weight: 2, metrics: { acc: NaN } }],
      'acc',
    );
    expect(m).toBeCloseTo(0.25);
    expect(weightedMetric([], 'acc')).toBeUndefined();
  });

  it('applies the mean delta with the server learning rate', () => {
    expect([...applyDelta(new Float32Array([1, 2]), new Float32Array([0.5, -1]), 2)]).toEqual([2, 0]);
  });

  it('treats too few results as a failed round, listing the failures', () => {
    const s = new FedAvg({ fraction: 1, minAgents: 3, minResults: 2, serverLearningRate: 1 });
    const out = s.aggregate(new Float32Array(1), { count: 1, totalWeight: 5, mean: () => new Float32Array(1) }, [{ agentId: 'a', numExamples: 5, weight: 5, metrics: {} }], [
      { agentId: 'b', outcome: 'rejected', reason: 'non_finite' },
      { agentId: 'c', outcome: 'dropped', reason: 'disconnected' },
    ]);
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.reason).toMatch(/only 1 of the 2 required.*1x rejected:non_finite.*1x dropped:disconnected/);
  });
});
