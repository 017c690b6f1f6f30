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

describe('run config: task, stopAt, evaluation, built-in MLP', () => {
  it('keeps a minimal task minimal and today\'s configs unchanged', () => {
    expect(parseRunConfig({}).task).toBeUndefined();
    const c = parseRunConfig({ model: { builtin: 'mlp' }, task: { type: 'regression', target: 'price' } });
    expect(c.model).toEqual({ builtin: 'mlp', hidden: [64, 32] });
    expect(c.task).toMatchObject({ type: 'regression', target: 'price' });
    expect(parseRunConfig({ model: 'mlp' }).model).toEqual({ builtin: 'mlp', hidden: [64, 32] });
  });

  it('accepts the issue\'s example', () => {
    const c = parseRunConfig({
      task: { type: 'regression', target: 'price', loss: 'huber', optimizer: { name: 'adam', learningRate: 0.001 }, metrics: ['rmse', 'r2'], normalization: 'zscore' },
      stopAt: { metric: 'rmse', value: 2.5 },
      evaluation: { data: 'csv:test.csv', target: 'price' },
    });
    expect(c.task?.optimizer).toEqual({ name: 'adam', learningRate: 0.001 });
    expect(c.model).toEqual({ builtin: 'mlp', hidden: [64, 32] });
    expect(c.stopAt).toEqual({ metric: 'rmse', value: 2.5 });
    expect(c.evaluation).toMatchObject({ data: 'csv:test.csv', missing: 'error' });
  });

  it.each([
    [{ task: { type: 'regression', loss: 'binary-crossentropy' } }, /task\.loss: "binary-crossentropy" does not fit task\.type regression; use mse or mae or huber/],
    [{ task: { type: 'binary', metrics: ['rmse'] } }, /task\.metrics: "rmse" is not a binary metric/],
    [{ task: { type: 'regression' }, targetAccuracy: 0.9 }, /targetAccuracy: a regression task has no accuracy/],
    [{ task: { type: 'regression' }, stopAt: { metric: 'accuracy', value: 0.9 } }, /stopAt\.metric: "accuracy" is not a regression metric/],
    [{ task: { type: 'regression' }, model: 'mnist-mlp' }, /10-class softmax classifier/],
    [{ task: { optimizer: { name: 'lbfgs' } } }, /optimizer\.name: use one of sgd, momentum, adam, rmsprop, adagrad/],
    [{ task: { type: 'ranking' } }, /task\.type: use one of classification, binary, multilabel, regression/],
    [{ model: { builtin: 'resnet' } }, /model\.builtin: only "mlp"/],
    [{ task: { huberDelta: 2 } }, /task\.huberDelta: only applies to loss "huber"/],
    [{ task: { normalisation: 'zscore' } }, /unknown option\(s\) normalisation/],
  ])('rejects %j naming the field and the fix', (input, msg) => {
    expect(() => parseRunConfig(input)).toThrow(msg);
  });
});
