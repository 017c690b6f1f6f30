import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { ResolvedTask } from '@fedge/proto';
import { initBackend } from '../backend.js';
import { checkOptimizer, createOptimizer } from './optimizers.js';

beforeAll(async () => void (await initBackend('wasm')));

/** One step from w = 1 on f(w) = w² (gradient 2): where each optimizer lands says which rule and options it applied. */
function step(spec: ResolvedTask['optimizer'], steps = 1): number {
  const w = tf.variable(tf.scalar(1));
  const opt = createOptimizer(spec);
  for (let i = 0; i < steps; i++) opt.minimize(() => tf.square(w) as tf.Scalar, false, [w]);
  const v = w.dataSync()[0]!;
  opt.dispose();
  w.dispose();
  return v;
}

describe('createOptimizer', () => {
  it('applies each update rule with Keras defaults', () => {
    expect(step({ name: 'sgd', learningRate: 0.1 })).toBeCloseTo(0.8, 6);
    // momentum 0.9: v1 = 2, w = 0.8; v2 = 0.9·2 + 1.6 = 3.4, w = 0.8 - 0.34.
    expect(step({ name: 'momentum', learningRate: 0.1 }, 2)).toBeCloseTo(0.46, 5);
    expect(step({ name: 'momentum', learningRate: 0.1, momentum: 0 }, 2)).toBeCloseTo(0.64, 5);
    // Adam's first step moves by the learning rate whatever the gradient's scale.
    expect(step({ name: 'adam', learningRate: 0.01 })).toBeCloseTo(0.99, 5);
    // rmsprop rho 0.9: ms = 0.1·4, step = lr·2/sqrt(0.4).
    expect(step({ name: 'rmsprop', learningRate: 0.01 })).toBeCloseTo(1 - 0.02 / Math.sqrt(0.4), 5);
    expect(step({ name: 'rmsprop', learningRate: 0.01, rho: 0.5 })).toBeCloseTo(1 - 0.02 / Math.sqrt(2), 5);
    // adagrad accumulator 0.1 + 4.
    expect(step({ name: 'adagrad', learningRate: 0.1 })).toBeCloseTo(1 - 0.2 / Math.sqrt(4.1), 5);
  });

  it('refuses options the optimizer would ignore, and bad learning rates', () => {
    expect(() => checkOptimizer({ name: 'sgd', momentum: 0.9 })).toThrow(/optimizer.momentum: sgd does not use it \(only momentum, rmsprop do\)/);
    expect(() => checkOptimizer({ name: 'adam', rho: 0.9 })).toThrow(/optimizer.rho/);
    expect(() => checkOptimizer({ name: 'nadam' as never })).toThrow(/use one of sgd, momentum, adam, rmsprop, adagrad/);
    expect(() => createOptimizer({ name: 'sgd', learningRate: 0 })).toThrow(/optimizer.learningRate/);
    expect(() => checkOptimizer({ name: 'momentum', momentum: 0.5, nesterov: true })).not.toThrow();
  });
});
