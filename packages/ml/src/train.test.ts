import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createRng, type LossName, type OptimizerName, type ResolvedTask } from '@fedge/proto';
import { initBackend } from './backend.js';
import { createBuiltinModel, createMlp, outputActivationFor } from './models.js';
import { loadMnist } from './mnist.js';
import { subset, type Dataset } from './dataset.js';
import { evaluate, trainLocal } from './train.js';
import { combineEvalMetrics } from './task/metrics.js';
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

// ---------------------------------------------------------------- tasks: each loss/optimizer pair learns a known answer

const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'momentum', 'adam', 'rmsprop', 'adagrad'];
const taskOf = (type: ResolvedTask['type'], loss: LossName, name: OptimizerName, learningRate: number, outputs: number, metrics: ResolvedTask['metrics'] = []): ResolvedTask =>
  ({ type, loss, huberDelta: 1, optimizer: { name, learningRate }, metrics, outputs });
const modelFor = (task: ResolvedTask, inputWidth: number) =>
  createMlp({ inputWidth, hidden: [], outputs: task.outputs, activation: outputActivationFor(task.type), seed: 1 });
const outWeights = (m: tf.LayersModel) => m.getLayer('out').getWeights().map((t) => Array.from(t.dataSync()));

/** n examples of `features` uniform values in [-1, 1]; `label` gives a row's targets, or undefined to drop the row. */
function synthetic(n: number, features: number, targets: number, label: (x: number[]) => number[] | undefined, seed = 7): Dataset {
  const rng = createRng(seed);
  const x: number[] = [], y: number[] = [];
  while (y.length < n * targets) {
    const row = Array.from({ length: features }, () => rng() * 2 - 1);
    const l = label(row);
    if (!l) continue;
    x.push(...row);
    y.push(...l);
  }
  return { x: Float32Array.from(x), y: Float32Array.from(y), n, features, numClasses: 0, targets };
}

describe('trainLocal with a task', () => {
  const W = [2, -1, 0.5], B = 0.3;
  const regression = synthetic(256, 3, 1, (r) => [W.reduce((s, w, j) => s + w * r[j]!, B)]);
  // MAE's gradient does not shrink near the optimum, so it needs smaller steps to settle within the tolerance.
  const RATES: Record<'smooth' | 'mae', Record<OptimizerName, number>> = {
    smooth: { sgd: 0.3, momentum: 0.05, adam: 0.05, rmsprop: 0.02, adagrad: 0.5 },
    mae: { sgd: 0.05, momentum: 0.01, adam: 0.02, rmsprop: 0.01, adagrad: 0.3 },
  };

  for (const loss of ['mse', 'mae', 'huber'] as const)
    it(`linear regression with ${loss} recovers y = Xw + b with every optimizer`, async () => {
      for (const name of OPTIMIZERS) {
        const task = taskOf('regression', loss, name, RATES[loss === 'mae' ? 'mae' : 'smooth'][name], 1, ['rmse', 'r2']);
        const m = modelFor(task, 3);
        const r = await trainLocal(m, regression, { epochs: 40, batchSize: 32, seed: 1, task });
        const [kernel, bias] = outWeights(m);
        kernel!.forEach((w, j) => expect(Math.abs(w - W[j]!), `${loss}/${name} w${j}`).toBeLessThan(0.05));
        expect(Math.abs(bias![0]! - B), `${loss}/${name} b`).toBeLessThan(0.05);
        expect(r.accuracy).toBeNaN();
        expect(r.metrics['r2']).toBeGreaterThan(0.99);
        m.dispose();
      }
    });

  it('logistic regression separates linearly separable data with every optimizer (accuracy and AUC 1)', async () => {
    // A margin of 0.2 around the boundary 1.5·x0 - x1 + 0.2 = 0.
    const ds = synthetic(200, 2, 1, (r) => {
      const s = 1.5 * r[0]! - r[1]! + 0.2;
      return Math.abs(s) < 0.2 ? undefined : [Number(s > 0)];
    });
    const rates: Record<OptimizerName, number> = { sgd: 1, momentum: 0.2, adam: 0.1, rmsprop: 0.05, adagrad: 1 };
    for (const name of OPTIMIZERS) {
      const task = taskOf('binary', 'binary-crossentropy', name, rates[name], 1, ['accuracy', 'auc', 'f1']);
      const m = modelFor(task, 2);
      await trainLocal(m, ds, { epochs: 20, batchSize: 20, seed: 1, task });
      const ev = await evaluate(m, ds, 500, task);
      expect(ev.metrics, name).toMatchObject({ accuracy: 1, auc: 1, f1: 1 });
      expect(ev.loss, name).toBeLessThan(0.1);
      // The learned boundary points the way of the true one, (1.5, -1, 0.2).
      const [[a, b], [c]] = outWeights(m) as [number[], number[]];
      const cos = (1.5 * a! - b! + 0.2 * c!) / Math.hypot(a!, b!, c!) / Math.hypot(1.5, 1, 0.2);
      expect(cos, name).toBeGreaterThan(0.99);
      m.dispose();
    }
  });

  it('softmax classification learns separable clusters with sparse and categorical crossentropy', async () => {
    const centers = [[1, 1], [-1, 1], [0, -1]] as const;
    const rng = createRng(3);
    const x = Float32Array.from({ length: 300 }, (_, k) => centers[Math.floor(k / 2) % 3]![k % 2]! + (rng() - 0.5) * 0.6);
    const ds: Dataset = { x, y: Int32Array.from({ length: 150 }, (_, i) => i % 3), n: 150, features: 2, numClasses: 3 };
    for (const loss of ['sparse-categorical-crossentropy', 'categorical-crossentropy'] as const)
      for (const [name, lr] of [['sgd', 1], ['adam', 0.1]] as const) {
        const task = taskOf('classification', loss, name, lr, 3, ['accuracy', 'f1', 'precision', 'recall']);
        const m = modelFor(task, 2);
        const r = await trainLocal(m, ds, { epochs: 20, batchSize: 15, seed: 1, task });
        expect(r.metrics['accuracy']).toBe(r.accuracy);
        const ev = await evaluate(m, ds, 500, task);
        expect(ev.metrics, `${loss}/${name}`).toMatchObject({ accuracy: 1, f1: 1, precision: 1, recall: 1 });
        expect(ev.loss).toBeLessThan(0.05);
        m.dispose();
      }
  });

  it('multilabel with binary crossentropy learns each label', async () => {
    const ds = synthetic(200, 3, 2, (r) => (Math.abs(r[0]!) < 0.1 || Math.abs(r[1]!) < 0.1 ? undefined : [Number(r[0]! > 0), Number(r[1]! > 0)]));
    const task = taskOf('multilabel', 'binary-crossentropy', 'adam', 0.1, 2, ['accuracy', 'f1']);
    const m = modelFor(task, 3);
    await trainLocal(m, ds, { epochs: 30, batchSize: 20, seed: 1, task });
    const ev = await evaluate(m, ds, 64, task);
    expect(ev.metrics).toMatchObject({ accuracy: 1, f1: 1 });
    // Label j depends on feature j only: the third feature's weights stay small next to the relevant ones.
    const [kernel] = outWeights(m);
    expect(Math.abs(kernel![4]!)).toBeLessThan(Math.abs(kernel![0]!) / 5);
    m.dispose();
  });
});

describe('evaluate with a task', () => {
  it('reports sufficient statistics so two agents combine to the metrics of their union, without leaking tensors', async () => {
    const rng = createRng(5);
    const x = Float32Array.from({ length: 300 }, () => rng() * 2 - 1);
    const y = Float32Array.from({ length: 200 }, (_, k) => x[Math.floor(k / 2) * 3 + (k % 2)]! * 3 + (k % 2) * 10 + rng() * 0.5);
    const ds: Dataset = { x, y, n: 100, features: 3, numClasses: 0, targets: 2 };
    const task = taskOf('regression', 'huber', 'adam', 0.1, 2, ['rmse', 'mae', 'r2']);
    const m = modelFor(task, 3);
    await trainLocal(m, ds, { epochs: 5, batchSize: 10, seed: 1, task });
    const before = tf.memory().numTensors;
    const all = await evaluate(m, ds, 32, task);
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(all.metrics).sort()).toEqual(['count', 'loss', 'mae', 'mse', 'r2', 'rmse', 'sse', 'ysum', 'ysum_0', 'ysum_1', 'ysumsq', 'ysumsq_0', 'ysumsq_1']);
    expect(all.metrics['count']).toBe(200);
    expect(all.metrics['rmse']).toBeCloseTo(Math.sqrt(all.metrics['mse']!), 12);
    const a = subset(ds, Array.from({ length: 30 }, (_, i) => i)), b = subset(ds, Array.from({ length: 70 }, (_, i) => i + 30));
    const parts = await Promise.all([a, b].map(async (d) => ({ n: d.n, metrics: (await evaluate(m, d, 32, task)).metrics })));
    const c = combineEvalMetrics(parts, task);
    for (const k of ['loss', 'rmse', 'mae', 'r2']) expect(c[k], k).toBeCloseTo(all.metrics[k]!, 6);
    m.dispose();
  });

  it('refuses data that does not fit the task, naming the example and the fix', async () => {
    const ds: Dataset = { x: new Float32Array(12), y: Float32Array.of(0, 1, 0.5, 1), n: 4, features: 3, numClasses: 0, targets: 1 };
    const binary = taskOf('binary', 'binary-crossentropy', 'sgd', 0.1, 1);
    const m = modelFor(binary, 3);
    await expect(trainLocal(m, ds, { epochs: 1, batchSize: 2, seed: 0, task: binary })).rejects.toThrow(/target 0.5 of example 2 must be 0 or 1 for binary/);
    const regression = taskOf('regression', 'mse', 'sgd', 0.1, 1);
    const lin = modelFor(regression, 3);
    await expect(evaluate(lin, { ...ds, y: Float32Array.of(0, NaN, 1, 1) }, 500, regression)).rejects.toThrow(/target NaN of example 1 is not a finite number; drop or impute/);
    await expect(evaluate(lin, { ...ds, y: new Float32Array(8), targets: 2 }, 500, regression)).rejects.toThrow(/2 target columns per example, model "mlp" outputs 1/);
    await expect(trainLocal(lin, ds, { epochs: 1, batchSize: 2, seed: 0 })).rejects.toThrow(/learningRate/);
    m.dispose();
    lin.dispose();
  });
});

// ---------------------------------------------------------------- FedProx: loss + (mu/2)·Σ||w − w0||²

describe('trainLocal with a proximal term (task.proximalMu)', () => {
  const W = [2, -1, 0.5], B = 0.3;
  const regression = synthetic(256, 3, 1, (r) => [W.reduce((s, w, j) => s + w * r[j]!, B)]);
  const flat = (m: tf.LayersModel) => outWeights(m).flat();
  const dist = (a: number[], b: number[]) => Math.hypot(...a.map((v, i) => v - b[i]!));

  it('mu 0 trains bit-identically to no mu, with every optimizer', async () => {
    for (const name of OPTIMIZERS) {
      const run = async (task: ResolvedTask) => {
        const m = modelFor(task, 3);
        const r = await trainLocal(m, regression, { epochs: 3, batchSize: 32, seed: 2, task });
        const w = flat(m);
        m.dispose();
        return { loss: r.loss, w };
      };
      const plain = taskOf('regression', 'mse', name, 0.05, 1);
      const [a, b] = [await run(plain), await run({ ...plain, proximalMu: 0 })];
      expect(b.w, name).toEqual(a.w);
      expect(b.loss, name).toBe(a.loss);
    }
  });

  it('a large mu keeps the weights near w0 with sgd and adam, without leaking tensors', async () => {
    // sgd is stable on the proximal objective while learningRate·mu < 2 (its curvature along w − w0 is mu).
    for (const [name, lr] of [['sgd', 0.1], ['adam', 0.05]] as const) {
      const run = async (mu: number | undefined) => {
        const task: ResolvedTask = { ...taskOf('regression', 'mse', name, lr, 1), ...(mu === undefined ? {} : { proximalMu: mu }) };
        const m = modelFor(task, 3);
        const w0 = flat(m);
        const before = tf.memory().numTensors;
        const r = await trainLocal(m, regression, { epochs: 20, batchSize: 32, seed: 1, task });
        expect(tf.memory().numTensors).toBe(before);
        const d = dist(flat(m), w0);
        m.dispose();
        return { d, loss: r.loss };
      };
      const free = await run(undefined), prox = await run(10);
      // x uniform in [-1, 1]: the MSE's Hessian is about (2/3)·I for the kernel and 2 for the bias, so the minimizer of
      // loss + 5·||w − w0||² sits about 2/3 / (2/3 + 10) ≈ 0.06 (kernel) to 2/12 ≈ 0.17 (bias) of the way to the
      // optimum. Measured: ||w − w0|| 0.149 vs 3.16 (ratio 0.044) with sgd, 0.220 vs 3.14 (0.065) with adam.
      const ratio = prox.d / free.d;
      expect(free.d, name).toBeGreaterThan(3);
      expect(ratio, `${name}: ||w − w0|| ${prox.d} with mu 10 vs ${free.d} without`).toBeLessThan(0.1);
      expect(ratio, name).toBeGreaterThan(0.02);
      // The reported loss is the task's MSE at the pulled-back weights (about 3.4; the free fit's is ~1e-7).
      expect(prox.loss, name).toBeGreaterThan(1);
      expect(free.loss, name).toBeLessThan(1e-4);
    }
  });

  it('matches a float64 reference of sgd on loss + (mu/2)·||w − w0||², reporting the loss without the term', async () => {
    // 5 examples, 2 features, full batches: each epoch is one step, whatever the shuffle. Step 1 starts at w0 (the
    // term's gradient is 0); steps 2 and 3 start away from it, where mu·(w − w0) is as large as the loss's gradient.
    const x = [[0.5, -1], [1, 0.25], [-0.75, 0.5], [0.2, 0.9], [-1, -0.4]], y = [1.5, -0.5, 2, 0.3, -1.2];
    const ds: Dataset = { x: Float32Array.from(x.flat()), y: Float32Array.from(y), n: 5, features: 2, numClasses: 0, targets: 1 };
    const mu = 3, lr = 0.2, steps = 3;
    const task: ResolvedTask = { ...taskOf('regression', 'mse', 'sgd', lr, 1), proximalMu: mu };
    const m = modelFor(task, 2);
    const w0 = flat(m); // [k0, k1, b]
    const losses: number[] = [];
    await trainLocal(m, ds, { epochs: steps, batchSize: 5, seed: 1, task, onProgress: (p) => losses.push(p.loss) });

    /** Float64 sgd on mean((x·k + b − y)²) + (mu/2)·||w − w0||²; the task losses before each step. */
    const reference = (muRef: number) => {
      const w = w0.map((v) => Math.fround(v));
      const taskLosses: number[] = [], objectives: number[] = [];
      for (let s = 0; s < steps; s++) {
        const r = x.map((xi, i) => xi[0]! * w[0]! + xi[1]! * w[1]! + w[2]! - y[i]!);
        const loss = r.reduce((a, v) => a + v * v, 0) / x.length;
        taskLosses.push(loss);
        objectives.push(loss + (muRef / 2) * dist(w, w0) ** 2);
        const g = [0, 1, 2].map((j) => (2 / x.length) * r.reduce((a, v, i) => a + v * (j < 2 ? x[i]![j]! : 1), 0) + muRef * (w[j]! - w0[j]!));
        g.forEach((gj, j) => (w[j]! -= lr * gj));
      }
      return { w, taskLosses, objectives };
    };
    const ref = reference(mu), plain = reference(0);
    flat(m).forEach((v, j) => expect(Math.abs(v - ref.w[j]!), `w${j}: ${v} vs ${ref.w[j]}`).toBeLessThan(1e-5));
    // The term was exercised: without it the weights land far from these.
    expect(dist(flat(m), plain.w)).toBeGreaterThan(0.05);
    // Reported losses are the task's MSE before each step; from step 2 on the objective differs from it.
    losses.forEach((l, s) => expect(Math.abs(l - ref.taskLosses[s]!), `step ${s + 1} loss`).toBeLessThan(1e-5));
    expect(ref.objectives[2]! - ref.taskLosses[2]!).toBeGreaterThan(0.01);
    m.dispose();
  });

  it('refuses a negative or non-finite mu', async () => {
    const m = modelFor(taskOf('regression', 'mse', 'sgd', 0.1, 1), 3);
    for (const mu of [-1, NaN, Infinity])
      await expect(trainLocal(m, regression, { epochs: 1, batchSize: 32, seed: 0, task: { ...taskOf('regression', 'mse', 'sgd', 0.1, 1), proximalMu: mu } }))
        .rejects.toThrow(/task.proximalMu: expected a number >= 0/);
    m.dispose();
  });
});
