import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend.js';
import { createBuiltinModel } from './models.js';
import { loadMnist } from './mnist.js';
import { subset } from './dataset.js';
import { evaluate, trainLocal } from './train.js';
import { getWeights } from './weights.js';

const { train, test } = loadMnist();
const first = (n: number) => subset(train, Array.from({ length: n }, (_, i) => i));

beforeAll(async () => void (await initBackend('wasm')));

describe('trainLocal', () => {
  it('mnist-mlp: 1 epoch on 2,000 digits reaches > 80% held-out accuracy without leaking tensors', async () => {
    const model = createBuiltinModel('mnist-mlp', 1);
    const before = tf.memory().numTensors;
    const progress: number[] = [];
    const r = await trainLocal(model, first(2000), {
      epochs: 1, batchSize: 10, learningRate: 0.05, seed: 1, onProgress: (p) => progress.push(p.batch),
    });
    expect(r.numExamples).toBe(2000);
    expect(progress).toHaveLength(200);
    expect(progress.at(-1)).toBe(200);
    expect(r.accuracy).toBeGreaterThan(0.6);
    expect(r.samplesPerSec).toBeGreaterThan(0);
    const ev = await evaluate(model, test);
    expect(ev.numExamples).toBe(997);
    expect(ev.accuracy).toBeGreaterThan(0.8);
    expect(ev.loss).toBeLessThan(1);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('is deterministic for a given seed and differs across seeds', async () => {
    const run = async (seed: number) => {
      const m = createBuiltinModel('mnist-mlp', 1);
      const r = await trainLocal(m, first(300), { epochs: 2, batchSize: 50, learningRate: 0.05, seed });
      const w = getWeights(m).weights;
      m.dispose();
      return { r, w };
    };
    const [a, b, c] = [await run(3), await run(3), await run(4)];
    expect(b.w).toEqual(a.w);
    expect(b.r.loss).toBe(a.r.loss);
    expect(c.w).not.toEqual(a.w);
  });

  it('trains the CNN on wasm (loss falls) and keeps the event loop responsive', async () => {
    const m = createBuiltinModel('mnist-cnn', 1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const ds = first(320);
    const before = (await evaluate(m, ds)).loss;
    const r = await trainLocal(m, ds, { epochs: 1, batchSize: 10, learningRate: 0.05, seed: 1 });
    clearInterval(timer);
    expect(r.loss).toBeLessThan(before);
    expect((await evaluate(m, ds)).loss).toBeLessThan(before * 0.8);
    expect(ticks).toBeGreaterThan(3);
    m.dispose();
  }, 30_000);

  it('stops on abort and rejects bad options and mismatched data', async () => {
    const m = createBuiltinModel('mnist-mlp');
    const ac = new AbortController();
    const run = trainLocal(m, first(1000), {
      epochs: 5, batchSize: 10, learningRate: 0.01, seed: 0, signal: ac.signal, onProgress: (p) => p.batch === 3 && ac.abort(),
    });
    await expect(run).rejects.toThrow(/abort/i);
    await expect(trainLocal(m, first(10), { epochs: 0, batchSize: 1, learningRate: 0.1, seed: 0 })).rejects.toThrow(/epochs/);
    const bad = { ...first(10), features: 10, x: new Float32Array(100) };
    await expect(trainLocal(m, bad, { epochs: 1, batchSize: 1, learningRate: 0.1, seed: 0 })).rejects.toThrow(/784/);
    const badLabel = first(10);
    badLabel.y[4] = 10;
    await expect(evaluate(m, badLabel)).rejects.toThrow(/label 10 of example 4/);
    m.dispose();
  });
});
