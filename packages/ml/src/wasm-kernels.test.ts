import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend.js';
import { createBuiltinModel } from './models.js';
import { getWeights } from './weights.js';

// Every fedge wasm kernel is checked against tfjs' reference cpu backend on the same inputs.
const det = (shape: number[], k: number) =>
  tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * k + 0.3)), shape);

async function onBoth(f: () => tf.Tensor[]): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const out: Record<string, Float32Array[]> = {};
  for (const be of ['cpu', 'wasm']) {
    await tf.setBackend(be);
    out[be] = tf.tidy(f).map((t) => {
      const d = t.dataSync() as Float32Array;
      t.dispose();
      return d;
    });
  }
  await tf.setBackend('wasm');
  return { cpu: out['cpu']!, wasm: out['wasm']! };
}

function relDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0, m = 1e-6;
  for (let i = 0; i < a.length; i++) (d = Math.max(d, Math.abs(a[i]! - b[i]!))), (m = Math.max(m, Math.abs(a[i]!)));
  return d / m;
}

beforeAll(async () => {
  const info = await initBackend('wasm');
  expect(info.name).toBe('wasm');
  expect(info.note).toMatch(/fedge kernels/);
});

describe('fedge wasm training kernels match the cpu backend', () => {
  type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  const convCases: [string, number[], number[], number, Pad][] = [
    ['5x5 same stride 1 (the CNN)', [3, 12, 12, 4], [5, 5, 4, 6], 1, 'same'],
    ['3x3 valid stride 1', [2, 9, 7, 3], [3, 3, 3, 5], 1, 'valid'],
    ['3x3 same stride 2', [2, 9, 9, 3], [3, 3, 3, 4], 2, 'same'],
    ['4x4 valid stride 2', [2, 10, 11, 2], [4, 4, 2, 3], 2, 'valid'],
    ['explicit asymmetric padding', [2, 8, 8, 2], [3, 3, 2, 3], 1, [[0, 0], [1, 2], [0, 1], [0, 0]]],
  ];
  it.each(convCases)('conv2d gradients: %s', async (_name, xs, fs, stride, pad) => {
    const r = await onBoth(() => {
      const x = det(xs, 0.37), f = det(fs, 0.11);
      const w = det([1, 1, 1, fs[3]!], 0.9); // non-uniform upstream gradient
      return tf.grads((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad).mul(w).sum())([x, f]);
    });
    expect(relDiff(r.cpu[0]!, r.wasm[0]!)).toBeLessThan(1e-5);
    expect(relDiff(r.cpu[1]!, r.wasm[1]!)).toBeLessThan(1e-5);
  });

  it.each([
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ])('matmul transposeA=%s transposeB=%s and its gradients', async (ta, tb) => {
    const r = await onBoth(() => {
      const a = det(ta ? [7, 5] : [5, 7], 0.21), b = det(tb ? [3, 7] : [7, 3], 0.13);
      const y = tf.matMul(a, b, ta, tb);
      return [y, ...tf.grads((p, q) => tf.matMul(p as tf.Tensor2D, q as tf.Tensor2D, ta, tb).square().sum())([a, b])];
    });
    for (let i = 0; i < 3; i++) expect(relDiff(r.cpu[i]!, r.wasm[i]!)).toBeLessThan(1e-5);
  });

  it('batched matmul with a transposed operand (second plan: C^T = B·A^T)', async () => {
    const r = await onBoth(() => [tf.matMul(det([2, 3, 40], 0.3), det([2, 50, 40], 0.7), false, true)]);
    expect(relDiff(r.cpu[0]!, r.wasm[0]!)).toBeLessThan(1e-5);
  });

  it.each([
    [2, 2, 'valid'],
    [3, 2, 'same'],
    [2, 1, 'valid'],
  ] as const)('maxPool gradient (size %i, stride %i, %s) incl. tied maxima', async (size, stride, pad) => {
    const r = await onBoth(() => {
      const x = tf.relu(det([2, 7, 6, 3], 0.5)); // relu leaves many tied zeros
      return [tf.grad((v) => tf.maxPool(v as tf.Tensor4D, size, stride, pad).mul(det([1, 1, 1, 3], 1.1)).sum())(x)];
    });
    expect(relDiff(r.cpu[0]!, r.wasm[0]!)).toBeLessThan(1e-6);
  });

  it('full mnist-cnn gradient agrees with cpu', async () => {
    const r = await onBoth(() => {
      const model = createBuiltinModel('mnist-cnn', 3);
      const x = tf.sigmoid(det([2, 784], 0.05));
      const y = tf.oneHot(tf.tensor1d([3, 7], 'int32'), 10);
      const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar);
      const out = model.trainableWeights.map((w) => grads[(w.read() as tf.Variable).name]!);
      model.dispose();
      return out;
    });
    expect(r.cpu).toHaveLength(8);
    for (let i = 0; i < r.cpu.length; i++) expect(relDiff(r.cpu[i]!, r.wasm[i]!)).toBeLessThan(1e-4);
  }, 30_000);

  it('kernels do not leak tensors', async () => {
    const before = tf.memory().numTensors;
    const model = createBuiltinModel('mnist-cnn', 1);
    const x = det([4, 784], 0.1);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d([1, 2, 3, 4], 'int32'), 10));
    const opt = tf.train.sgd(0.01);
    for (let i = 0; i < 3; i++) tf.dispose(opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, true)!);
    expect(getWeights(model).weights.length).toBe(1_663_370);
    tf.dispose([x, y]);
    opt.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
