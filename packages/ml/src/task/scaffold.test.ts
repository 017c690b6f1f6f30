/** SCAFFOLD's agent side against a float64 reference on a tiny linear model: corrected SGD steps and the option II variate update. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { ResolvedTask } from '@fedge/proto';
import { initBackend } from '../backend.js';
import type { Dataset } from '../dataset.js';
import { createMlp } from '../models.js';
import { trainLocal } from '../train.js';
import { getWeights } from '../weights.js';
import { controlVariateDelta } from './scaffold.js';

beforeAll(async () => void (await initBackend('wasm')));

// 5 examples, 2 features, one linear output: weights [k0, k1, b]; full batches, so each epoch is one step whatever the shuffle.
const X = [[0.5, -1], [1, 0.25], [-0.75, 0.5], [0.2, 0.9], [-1, -0.4]];
const Y = [1.5, -0.5, 2, 0.3, -1.2];
const ds: Dataset = { x: Float32Array.from(X.flat()), y: Float32Array.from(Y), n: 5, features: 2, numClasses: 0, targets: 1 };
const task = (name: 'sgd' | 'adam', learningRate: number): ResolvedTask => ({ type: 'regression', loss: 'mse', huberDelta: 1, optimizer: { name, learningRate }, metrics: [], outputs: 1 });
const model = () => createMlp({ inputWidth: 2, hidden: [], outputs: 1, activation: 'linear', seed: 1 });

/** Float64 SCAFFOLD client (Algorithm 1 lines 9-12, option II) on mean((x·k + b − y)²). */
function reference(x0: number[], c: number[], ci: number[], lr: number, K: number): { y: number[]; ciNext: number[] } {
  const w = x0.slice();
  for (let s = 0; s < K; s++) {
    const r = X.map((xi, i) => xi[0]! * w[0]! + xi[1]! * w[1]! + w[2]! - Y[i]!);
    const g = [0, 1, 2].map((j) => (2 / X.length) * r.reduce((a, v, i) => a + v * (j < 2 ? X[i]![j]! : 1), 0));
    for (let j = 0; j < 3; j++) w[j] = w[j]! - lr * (g[j]! - ci[j]! + c[j]!);
  }
  return { y: w, ciNext: ci.map((v, j) => v - c[j]! + (x0[j]! - w[j]!) / (K * lr)) };
}

describe('SCAFFOLD local training (trainLocal controlCorrection)', () => {
  it('steps along g − c_i + c and updates the variate as option II, matching float64 within float32 rounding', async () => {
    const lr = 0.1, K = 4;
    const c = [0.3, -0.7, 0.25], ci = [-0.4, 0.2, 0.6];
    const m = model();
    const x0 = Array.from(getWeights(m).weights);
    const before = tf.memory().numTensors;
    const r = await trainLocal(m, ds, { epochs: K, batchSize: 5, seed: 1, task: task('sgd', lr), controlCorrection: Float32Array.from(c.map((v, j) => v - ci[j]!)) });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.steps).toBe(K);
    const y = getWeights(m).weights;
    const ref = reference(x0, c, ci, lr, K);
    y.forEach((v, j) => expect(Math.abs(v - ref.y[j]!), `y${j}: ${v} vs ${ref.y[j]}`).toBeLessThan(1e-5));
    // The correction moved the weights: plain SGD lands elsewhere.
    const plain = reference(x0, [0, 0, 0], [0, 0, 0], lr, K);
    expect(Math.hypot(...plain.y.map((v, j) => v - y[j]!))).toBeGreaterThan(0.05);
    // Δc_i from the agent's delta y − x; c_i + Δc_i is the paper's c_i⁺.
    const delta = Float32Array.from(y, (v, j) => v - x0[j]!);
    const dc = controlVariateDelta(delta, Float32Array.from(c), r.steps, lr);
    dc.forEach((v, j) => expect(Math.abs(ci[j]! + v - ref.ciNext[j]!), `c_i+[${j}]`).toBeLessThan(1e-4));
    m.dispose();
  });

  it('a zero correction trains bit-identically to plain SGD', async () => {
    const run = async (corr?: Float32Array) => {
      const m = model();
      await trainLocal(m, ds, { epochs: 3, batchSize: 2, seed: 3, task: task('sgd', 0.05), ...(corr ? { controlCorrection: corr } : {}) });
      const w = getWeights(m).weights;
      m.dispose();
      return w;
    };
    expect(await run(new Float32Array(3))).toEqual(await run());
  });

  it('refuses an optimizer other than sgd and a correction of the wrong size, naming the fix', async () => {
    const m = model();
    await expect(trainLocal(m, ds, { epochs: 1, batchSize: 5, seed: 1, task: task('adam', 0.1), controlCorrection: new Float32Array(3) })).rejects.toThrow(/scaffold corrects plain SGD steps; this task trains with adam/);
    await expect(trainLocal(m, ds, { epochs: 1, batchSize: 5, seed: 1, task: task('sgd', 0.1), controlCorrection: new Float32Array(4) })).rejects.toThrow(/holds 4 values, the model has 3/);
    m.dispose();
  });

  it('controlVariateDelta checks K and lr', () => {
    expect(() => controlVariateDelta(new Float32Array(2), new Float32Array(2), 0, 0.1)).toThrow(/local steps K/);
    expect(() => controlVariateDelta(new Float32Array(2), new Float32Array(2), 1, 0)).toThrow(/learning rate/);
    expect(() => controlVariateDelta(new Float32Array(2), new Float32Array(3), 1, 0.1)).toThrow(/2 values/);
  });
});
