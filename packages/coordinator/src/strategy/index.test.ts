/** The strategy registry: strategy.name picks the factory; a privacy block wraps it in DP. */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { DpStrategy } from './dp.js';
import { FedAvg } from './fedavg.js';
import { createStrategy } from './index.js';

const deps = { populationSize: () => 10 };
const privacy = { clipNorm: 1, noiseMultiplier: 1.1, delta: 1e-5 };

describe('createStrategy', () => {
  it('fedavg by default, with the run\'s server learning rate', () => {
    const s = createStrategy(parseRunConfig({ strategy: { serverLearningRate: 0.5 } }), deps);
    expect(s).toBeInstanceOf(FedAvg);
    expect(Array.from(s.serverStep(new Float32Array([1, 1]), new Float32Array([2, -2])))).toEqual([2, 0]);
    expect(s.privacy).toBeUndefined();
  });

  it('a privacy block wraps the strategy: central replaces selection and weights, local only accounts', () => {
    const central = createStrategy(parseRunConfig({ privacy: { ...privacy, mode: 'central' }, agentsPerRound: { fraction: 0.5, min: 1 } }), deps);
    expect(central).toBeInstanceOf(DpStrategy);
    expect(central.name).toBe('dp-fedavg');
    expect(central.weightOf(100)).toBe(1);
    expect(central.taskConfig?.()).toEqual({ clipNorm: 1, noiseStd: 0, reportClipped: false });
    const local = createStrategy(parseRunConfig({ privacy: { ...privacy, mode: 'local' } }), deps);
    expect(local.name).toBe('fedavg-local-dp');
    expect(local.weightOf(100)).toBe(100);
    expect(local.privacy).toBeDefined();
  });

  it('async FedAvg: the buffered step divides the staleness-weighted sum by the examples', () => {
    const s = createStrategy(parseRunConfig({ mode: 'async', strategy: { name: 'fedavg' } }), deps);
    // Two updates of 10 examples, weights 10 and 5 (a stale one): mean (10*1 + 5*4) / 15 = 2, step 2 * 15 / 20 = 1.5.
    const out = s.aggregateBuffered(new Float32Array([0]), { count: 2, totalWeight: 15, mean: () => new Float32Array([2]) }, [
      { agentId: 'a', numExamples: 10, weight: 10, metrics: {} },
      { agentId: 'b', numExamples: 10, weight: 5, metrics: {} },
    ], []);
    expect(out.ok && out.weights[0]).toBeCloseTo(1.5, 6);
  });
});
