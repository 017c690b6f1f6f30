import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { LossName } from '@fedge/proto';
import { initBackend } from '../backend.js';
import { labelTensor, lossFunction } from './losses.js';

beforeAll(async () => void (await initBackend('wasm')));

/** Loss and its gradient with respect to the predictions, on the backend under test. */
function run(loss: LossName, pred: number[][], y: Int32Array | Float32Array, huberDelta = 1): { value: number; grad: number[] } {
  return tf.tidy(() => {
    const p = tf.tensor2d(pred);
    const labels = labelTensor(loss, y, pred.length, pred[0]!.length);
    const fn = lossFunction(loss, huberDelta);
    const { value, grad } = tf.valueAndGrad((q: tf.Tensor) => fn(q as tf.Tensor2D, labels))(p);
    // + 0 turns -0 (a zero gradient times a negative) into 0 for toEqual.
    return { value: value.dataSync()[0]!, grad: Array.from(grad.dataSync(), (g) => g + 0) };
  });
}

describe('losses (values as Keras computes them, gradients on wasm)', () => {
  it('runs on the wasm backend', () => expect(tf.getBackend()).toBe('wasm'));

  it('crossentropies: sparse and categorical agree on class indices; probabilities are clipped', () => {
    const p = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]];
    for (const loss of ['sparse-categorical-crossentropy', 'categorical-crossentropy'] as const) {
      const r = run(loss, p, Int32Array.of(0, 1));
      expect(r.value).toBeCloseTo((-Math.log(0.7) - Math.log(0.8)) / 2, 6);
      // d/dp of -mean(log p_label): -1 / (2 p) at the label, 0 elsewhere.
      expect(r.grad[0]).toBeCloseTo(-1 / (2 * 0.7), 5);
      expect(r.grad[4]).toBeCloseTo(-1 / (2 * 0.8), 5);
      expect(r.grad[1]).toBe(0);
    }
    expect(run('sparse-categorical-crossentropy', [[0, 1]], Int32Array.of(0)).value).toBeCloseTo(-Math.log(1e-7), 3);
  });

  it('binary crossentropy: mean over examples and label columns', () => {
    const r = run('binary-crossentropy', [[0.9, 0.2]], Float32Array.of(1, 0));
    expect(r.value).toBeCloseTo((-Math.log(0.9) - Math.log(0.8)) / 2, 6);
    expect(r.grad[0]).toBeCloseTo(-1 / (2 * 0.9), 5);
    expect(r.grad[1]).toBeCloseTo(1 / (2 * 0.8), 5);
  });

  it('mse, mae and huber: mean over every target value', () => {
    const p = [[1, 2], [3, 4]], y = Float32Array.of(1, 1, 1, 1); // errors 0, 1, 2, 3
    expect(run('mse', p, y).value).toBeCloseTo(14 / 4, 6);
    expect(run('mse', p, y).grad).toEqual([0, 0.5, 1, 1.5]);
    expect(run('mae', p, y).value).toBeCloseTo(6 / 4, 6);
    expect(run('mae', p, y).grad.slice(1)).toEqual([0.25, 0.25, 0.25]);
    // Huber, delta 1: 0, 0.5, 1.5, 2.5; gradient e inside ±delta, delta·sign(e) outside.
    const h = run('huber', p, y);
    expect(h.value).toBeCloseTo(4.5 / 4, 6);
    expect(h.grad).toEqual([0, 0.25, 0.25, 0.25]);
    const h2 = run('huber', [[0.5, -3]], Float32Array.of(0, 0), 2);
    expect(h2.value).toBeCloseTo((0.125 + 2 * (3 - 1)) / 2, 6);
    expect(h2.grad).toEqual([0.25, -1]);
  });

  it('does not leak tensors', () => {
    const before = tf.memory().numTensors;
    run('huber', [[1, 2]], Float32Array.of(0, 0));
    run('categorical-crossentropy', [[0.5, 0.5]], Int32Array.of(1));
    expect(tf.memory().numTensors).toBe(before);
  });
});
