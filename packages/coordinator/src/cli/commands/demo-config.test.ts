/** fedge demo's run config: defaults that fit the data, flags over a --config file. */
import { describe, expect, it } from 'vitest';
import { ASYNC_DEFAULT_STRATEGY, parseRunConfig } from '../../config/run-config.js';
import { demoRunConfig, type DemoOpts } from './demo-config.js';

const opts = (o: Partial<DemoOpts>): DemoOpts => ({ agents: 4, data: 'mnist', partition: 'iid', seed: 42, dataDir: '.fedge', format: 'table', mode: 'sync', stragglers: 0, slowdown: 10, errorFeedback: true, ...o }) as DemoOpts;

describe('fedge demo run config', () => {
  it('keeps MNIST as it was: the built-in MLP, SGD at 0.2, no task', () => {
    const c = parseRunConfig(demoRunConfig(opts({}), {}, 4, 1));
    expect(c.model).toBe('mnist-mlp');
    expect(c.learningRate).toBe(0.2);
    expect(c.task).toBeUndefined();
  });

  it('mnist-cnn trains with its measured settings (E=1, B=10, lr 0.1) unless a flag or the --config file says otherwise', () => {
    const c = parseRunConfig(demoRunConfig(opts({ model: 'mnist-cnn' }), {}, 4, 1));
    expect([c.epochs, c.batchSize, c.learningRate]).toEqual([1, 10, 0.1]);
    const mlp = parseRunConfig(demoRunConfig(opts({}), {}, 4, 1));
    expect([mlp.epochs, mlp.batchSize, mlp.learningRate]).toEqual([2, 32, 0.2]);
    const flags = parseRunConfig(demoRunConfig(opts({ model: 'mnist-cnn', epochs: 3, lr: 0.05 }), { batchSize: 64 }, 4, 1));
    expect([flags.epochs, flags.batchSize, flags.learningRate]).toEqual([3, 64, 0.05]);
  });

  it('--mode async with no strategy or buffer flags: fedadam and an automatic buffer size; flags win', () => {
    const c = parseRunConfig(demoRunConfig(opts({ mode: 'async' }), {}, 4, 1));
    expect(c.strategy).toEqual({ name: 'fedadam', serverLearningRate: ASYNC_DEFAULT_STRATEGY.serverLearningRate, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    expect(c.async.bufferSize).toBe('auto');
    const set = parseRunConfig(demoRunConfig(opts({ mode: 'async', strategy: { name: 'fedavg' }, bufferSize: 3 }), {}, 4, 1));
    expect(set.strategy).toEqual({ name: 'fedavg', serverLearningRate: 1 });
    expect(set.async.bufferSize).toBe(3);
  });

  it('your own data: the data-sized MLP, a task, central evaluation on the held-back 10%, Adam at 0.01 unless a rate is named', () => {
    const c = parseRunConfig(demoRunConfig(opts({ data: 'csv:x.csv', target: ['price'], task: 'regression' }), {}, 4, 1));
    expect(c.model).toEqual({ builtin: 'mlp', hidden: [64, 32] });
    expect(c.task).toMatchObject({ type: 'regression', target: 'price', optimizer: { name: 'adam', learningRate: 0.01 } });
    expect(c.evaluation).toMatchObject({ data: 'csv:x.csv', holdout: { fraction: 0.1, seed: 42 } });
    const sgd = parseRunConfig(demoRunConfig(opts({ data: 'csv:x.csv', target: ['price'], lr: 0.001 }), {}, 4, 1));
    expect(sgd.task?.optimizer).toBeUndefined();
    expect(sgd.learningRate).toBe(0.001);
    const file = parseRunConfig(demoRunConfig(opts({ data: 'csv:x.csv' }), { task: { type: 'binary', optimizer: { name: 'rmsprop' } } }, 4, 1));
    expect(file.task?.optimizer).toEqual({ name: 'rmsprop' });
  });
});
