import { describe, expect, it } from 'vitest';
import { ASYNC_DEFAULT_STRATEGY, autoBufferSize, bufferSizeOf, parseRunConfig, STRATEGY_COMBINATIONS, STRATEGY_NAMES, STRATEGY_OPTIONS } from './run-config.js';

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
    [{ strategy: { name: 'fednova' } }, /strategy\.name: use one of fedavg, fedavgm, fedadam, fedyogi, fedadagrad, fedprox/],
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

describe('run config: strategy block', () => {
  it('today\'s configs parse as before; each strategy gets its defaults', () => {
    expect(parseRunConfig({}).strategy).toEqual({ name: 'fedavg', serverLearningRate: 1 });
    expect(parseRunConfig({ strategy: { serverLearningRate: 0.5 } }).strategy).toEqual({ name: 'fedavg', serverLearningRate: 0.5 });
    expect(parseRunConfig({ strategy: { name: 'fedavgm' } }).strategy).toEqual({ name: 'fedavgm', serverLearningRate: 1, momentum: 0.9 });
    expect(parseRunConfig({ strategy: { name: 'fedadam' } }).strategy).toEqual({ name: 'fedadam', serverLearningRate: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    expect(parseRunConfig({ strategy: { name: 'fedyogi', tau: 0.01 } }).strategy).toEqual({ name: 'fedyogi', serverLearningRate: 1e-2, beta1: 0.9, beta2: 0.99, tau: 0.01 });
    expect(parseRunConfig({ strategy: { name: 'fedadagrad' } }).strategy).toEqual({ name: 'fedadagrad', serverLearningRate: 1e-2, beta1: 0, tau: 1e-3 });
    expect(parseRunConfig({ strategy: { name: 'fedprox' } }).strategy).toEqual({ name: 'fedprox', serverLearningRate: 1, proximalMu: 0.01 });
    expect(parseRunConfig({ strategy: { name: 'fedadam', proximalMu: 0.1 } }).strategy.proximalMu).toBe(0.1);
    expect(parseRunConfig({ strategy: { name: 'fedadam' }, mode: 'async' }).strategy.name).toBe('fedadam');
    expect(parseRunConfig({ strategy: { name: 'fedyogi' }, privacy: { clipNorm: 1, noiseMultiplier: 1, delta: 1e-5 } }).strategy.name).toBe('fedyogi');
  });

  it.each([
    [{ strategy: { name: 'fedadam', momentum: 0.9 } }, /strategy\.momentum: applies to fedavgm, not fedadam/],
    [{ strategy: { name: 'fedavg', tau: 0.1 } }, /strategy\.tau: applies to fedadam, fedyogi or fedadagrad, not fedavg/],
    [{ strategy: { name: 'fedadagrad', beta2: 0.9 } }, /strategy\.beta2: applies to fedadam or fedyogi, not fedadagrad/],
    [{ strategy: { name: 'fedyogi' }, mode: 'async' }, /strategy\.name fedyogi cannot run with mode async; use fedavg, fedavgm, fedadam, fedprox or norm-bound/],
    [{ strategy: { name: 'fedadagrad' }, mode: 'async' }, /strategy\.name fedadagrad cannot run with mode async/],
    [{ strategy: { name: 'fedavgm', momentum: 1 } }, /strategy\.momentum: must be in \[0, 1\)/],
    [{ strategy: { name: 'fedadam', tau: 0 } }, /strategy\.tau: must be > 0/],
    [{ strategy: { name: 'fedprox', proximalMu: -1 } }, /strategy\.proximalMu: must be >= 0/],
    [{ strategy: { name: 'fedadam', lr: 0.1 } }, /strategy: unknown option\(s\) lr/],
  ])('rejects %j naming the option and the strategy', (input, msg) => {
    expect(() => parseRunConfig(input)).toThrow(msg);
  });

  it('exports one combination table and the option table', () => {
    expect(STRATEGY_NAMES).toEqual(['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'fedprox', 'norm-bound', 'median', 'trimmed-mean', 'krum', 'multi-krum', 'scaffold']);
    expect(STRATEGY_COMBINATIONS.async).toEqual(['fedavg', 'fedavgm', 'fedadam', 'fedprox', 'norm-bound']);
    expect(STRATEGY_COMBINATIONS.privacy).toEqual(['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'fedprox', 'norm-bound']);
    // scaffold's [delta | variate delta] is neither noised nor compressed (see NOT_SCAFFOLD).
    expect(STRATEGY_COMBINATIONS.localPrivacy).toEqual(STRATEGY_NAMES.filter((n) => n !== 'scaffold'));
    expect(STRATEGY_COMBINATIONS.compression).toEqual(STRATEGY_NAMES.filter((n) => n !== 'scaffold'));
    expect(STRATEGY_OPTIONS.momentum).toEqual(['fedavgm']);
  });
});

describe('run config: robust strategies and normBound', () => {
  const dp = { clipNorm: 1, noiseMultiplier: 1, delta: 1e-5 };
  it('defaults: trimmed-mean beta 0.1, krum and multi-krum f 1; normBound on any strategy', () => {
    expect(parseRunConfig({ strategy: { name: 'median' } }).strategy).toEqual({ name: 'median', serverLearningRate: 1 });
    expect(parseRunConfig({ strategy: { name: 'trimmed-mean' } }).strategy).toEqual({ name: 'trimmed-mean', serverLearningRate: 1, beta: 0.1 });
    expect(parseRunConfig({ strategy: { name: 'krum' } }).strategy).toEqual({ name: 'krum', serverLearningRate: 1, f: 1 });
    expect(parseRunConfig({ strategy: { name: 'multi-krum', f: 2, m: 3 } }).strategy).toEqual({ name: 'multi-krum', serverLearningRate: 1, f: 2, m: 3 });
    expect(parseRunConfig({ strategy: { name: 'norm-bound', normBound: 5 } }).strategy).toEqual({ name: 'norm-bound', serverLearningRate: 1, normBound: 5 });
    expect(parseRunConfig({ strategy: { name: 'fedadam', normBound: 2 } }).strategy.normBound).toBe(2);
    expect(parseRunConfig({ strategy: { name: 'krum', normBound: 2 } }).strategy.normBound).toBe(2);
    // Local DP is allowed with a robust aggregator; norm-bound runs async and under central DP.
    expect(parseRunConfig({ strategy: { name: 'median' }, privacy: { ...dp, mode: 'local' } }).strategy.name).toBe('median');
    expect(parseRunConfig({ strategy: { name: 'norm-bound', normBound: 1 }, mode: 'async' }).strategy.name).toBe('norm-bound');
    expect(parseRunConfig({ strategy: { name: 'norm-bound', normBound: 1 }, privacy: dp }).strategy.name).toBe('norm-bound');
  });

  it.each([
    [{ strategy: { name: 'norm-bound' } }, /strategy\.normBound: norm-bound needs the bound/],
    [{ strategy: { name: 'fedavg', normBound: 0 } }, /strategy\.normBound: must be > 0/],
    [{ strategy: { name: 'trimmed-mean', beta: 0.5 } }, /strategy\.beta: must be in \[0, 0\.5\)/],
    [{ strategy: { name: 'krum', beta: 0.1 } }, /strategy\.beta: applies to trimmed-mean, not krum/],
    [{ strategy: { name: 'median', f: 1 } }, /strategy\.f: applies to krum or multi-krum, not median/],
    [{ strategy: { name: 'krum', m: 2 } }, /strategy\.m: applies to multi-krum, not krum/],
    [{ strategy: { name: 'krum', f: 1.5 } }, /strategy\.f: must be a whole number/],
    [{ strategy: { name: 'median' }, mode: 'async' }, /strategy\.name median cannot run with mode async; use fedavg, fedavgm, fedadam, fedprox or norm-bound/],
    [{ strategy: { name: 'trimmed-mean' }, mode: 'async' }, /strategy\.name trimmed-mean cannot run with mode async/],
    [{ strategy: { name: 'krum' }, privacy: dp }, /strategy\.name krum cannot run with privacy mode central \(central differential privacy; privacy\.mode "local" is allowed\); use fedavg/],
    [{ strategy: { name: 'multi-krum' }, privacy: { ...dp, mode: 'central' } }, /strategy\.name multi-krum cannot run with privacy mode central/],
  ])('rejects %j naming the option (or both sides of the combination)', (input, msg) => {
    expect(() => parseRunConfig(input)).toThrow(msg);
  });
});

describe('run config: async defaults', () => {
  it('an async run that names no strategy gets FedAdam (server lr 0.005) and bufferSize "auto"; sync keeps FedAvg', () => {
    const a = parseRunConfig({ mode: 'async' });
    expect(a.strategy).toEqual({ ...ASYNC_DEFAULT_STRATEGY, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    expect(a.strategy).toMatchObject({ name: 'fedadam', serverLearningRate: 0.005 });
    expect(a.async).toEqual({ bufferSize: 'auto', maxStaleness: 20, speedWeighting: true });
    expect(parseRunConfig({}).strategy).toEqual({ name: 'fedavg', serverLearningRate: 1 });
    // Options without a name apply to the default; a name (or a number for K) is the user's and wins.
    expect(parseRunConfig({ mode: 'async', strategy: { serverLearningRate: 0.02 } }).strategy).toEqual({ name: 'fedadam', serverLearningRate: 0.02, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    expect(parseRunConfig({ mode: 'async', strategy: { name: 'fedavg' } }).strategy).toEqual({ name: 'fedavg', serverLearningRate: 1 });
    expect(parseRunConfig({ mode: 'async', strategy: { name: 'fedavgm' } }).strategy).toEqual({ name: 'fedavgm', serverLearningRate: 1, momentum: 0.9 });
    expect(parseRunConfig({ mode: 'async', async: { bufferSize: 4 } }).async.bufferSize).toBe(4);
    expect(() => parseRunConfig({ mode: 'async', async: { bufferSize: 'big' } })).toThrow(/async\.bufferSize: use "auto" or a whole number/);
  });

  it('"auto" is min(concurrency, 10), at least 1', () => {
    expect([1, 3, 10, 11, 1000].map(autoBufferSize)).toEqual([1, 3, 10, 10, 10]);
    expect(() => bufferSizeOf(parseRunConfig({ mode: 'async' }))).toThrow(/resolved when the async run starts/);
    expect(bufferSizeOf(parseRunConfig({ mode: 'async', async: { bufferSize: 7 } }))).toBe(7);
  });
});
