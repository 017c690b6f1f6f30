import { describe, expect, it } from 'vitest';
import type { RunRecord } from '../store/store.js';
import { parseRunConfig } from '../config/run-config.js';
import { gateCanaryOptions, gateMetric, judgePromotionGate } from './promotion-gate.js';

const run = (promotion: unknown, versions: Partial<RunRecord['versions'][number]>[], extra: Record<string, unknown> = {}): RunRecord =>
  ({
    id: 'run-g',
    config: parseRunConfig({ model: 'mnist-mlp', rounds: 3, promotion, ...extra }),
    status: 'completed',
    createdAt: '',
    round: 3,
    modelVersion: versions.length - 1,
    rounds: [],
    versions: versions.map((v, i) => ({ version: i, sha256: `s${i}`, round: i, createdAt: '', ...v })),
  }) as RunRecord;

describe('promotion gate', () => {
  it('passes the best version by accuracy when it reaches minMetric, and fails naming the figure otherwise', () => {
    const versions = [{ centralAccuracy: 0.1 }, { federatedAccuracy: 0.85 }, { federatedAccuracy: 0.93 }, { federatedAccuracy: 0.91 }];
    const ok = judgePromotionGate(run({ auto: true, minMetric: 0.9 }, versions), 'T');
    expect(ok).toEqual({ at: 'T', passed: true, version: 2, value: 0.93, metric: 'accuracy', min: 0.9, message: 'version 2 passed the promotion gate: accuracy 0.93 >= 0.9' });
    const bad = judgePromotionGate(run({ auto: true, minMetric: 0.95 }, versions));
    expect(bad).toMatchObject({ passed: false, version: 2, value: 0.93 });
    expect(bad.message).toBe('promotion gate failed: the best version (2) has accuracy 0.93, below promotion.minMetric 0.95');
  });

  it('reads lower-is-better metrics (rmse) from below: minMetric is the maximum allowed', () => {
    const versions = [{}, { federatedMetrics: { rmse: 4.2 } }, { federatedMetrics: { rmse: 3.1 } }, { centralMetrics: { rmse: 3.5 } }];
    const r = run({ auto: true, minMetric: 3.2, metric: 'rmse' }, versions);
    expect(gateMetric(r)).toBe('rmse');
    expect(judgePromotionGate(r)).toMatchObject({ passed: true, version: 2, value: 3.1 });
    const f = judgePromotionGate(run({ auto: true, minMetric: 3, metric: 'rmse' }, versions));
    expect(f.message).toBe('promotion gate failed: the best version (2) has rmse 3.1, above the maximum 3');
  });

  it('takes the metric from stopAt when promotion names none, and fails when no version was evaluated', () => {
    const r = run({ auto: true, minMetric: 0.5 }, [{}, {}, {}], { stopAt: { metric: 'accuracy', value: 0.99 } });
    expect(gateMetric(r)).toBe('accuracy');
    expect(judgePromotionGate(r)).toMatchObject({ passed: false, message: expect.stringMatching(/no trained version has a accuracy/) });
  });

  it('config: defaults, the window as a duration, and errors naming the field', () => {
    const c = parseRunConfig({ model: 'mnist-mlp', promotion: { auto: true, minMetric: 0.9 } });
    expect(c.promotion).toEqual({ auto: true, minMetric: 0.9, canary: 0.2, window: '10m' });
    expect(gateCanaryOptions({ config: parseRunConfig({ model: 'mnist-mlp', promotion: { auto: true, minMetric: 0.9, window: '30s', maxErrorRate: 0.01 } }) })).toEqual({ windowMs: 30_000, maxErrorRate: 0.01 });
    expect(() => parseRunConfig({ model: 'mnist-mlp', promotion: { auto: true, minMetric: 0.9, window: 'soon' } })).toThrow(/promotion.window: "soon" is not a duration/);
    expect(() => parseRunConfig({ model: 'mnist-mlp', promotion: { auto: true, minMetric: 0.9, canary: 1.5 } })).toThrow(/promotion.canary: must be in \(0, 1\)/);
    expect(() => parseRunConfig({ model: 'mnist-mlp', promotion: { auto: true } })).toThrow(/promotion.minMetric/);
  });
});
