import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './run-config.js';

describe('run config', () => {
  it('fills defaults', () => {
    const c = parseRunConfig({});
    expect(c).toMatchObject({ model: 'mnist-mlp', rounds: 10, agentsPerRound: { fraction: 1, min: 2 }, minResults: 2, epochs: 1, strategy: { name: 'fedavg' } });
  });

  it.each([
    [{ rounds: 0 }, /rounds/],
    [{ rounds: 2.5 }, /rounds/],
    [{ model: 'resnet' }, /model: unknown model "resnet"; use one of mnist-mlp, mnist-cnn/],
    [{ agentsPerRound: { fraction: 0 } }, /agentsPerRound\.fraction/],
    [{ agentsPerRound: { min: 2 }, minResults: 3 }, /minResults \(3\) cannot exceed agentsPerRound\.min \(2\)/],
    [{ learningRate: -1 }, /learningRate/],
    [{ batchSize: 'big' }, /batchSize/],
    [{ roundz: 3 }, /unknown option\(s\) roundz/],
    [{ strategy: { name: 'fedprox' } }, /strategy\.name/],
    [{ model: { path: '' } }, /model\.path/],
  ])('rejects %j naming the field', (input, msg) => {
    expect(() => parseRunConfig(input)).toThrow(msg);
  });

  it('carries a stable error code', () => {
    try {
      parseRunConfig({ rounds: -1 });
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_VALIDATION');
      return;
    }
    throw new Error('expected a validation error');
  });
});
