/** Local training for FedAvg clients (plain minibatch SGD) and evaluation, without leaking tensors. */
import * as tf from '@tensorflow/tfjs';
import { ValidationError } from '@fedge/proto';
import { createRng, shuffleInPlace } from './rng.js';
import type { Dataset } from './dataset.js';

export interface TrainProgress { epoch: number; batch: number; batches: number; loss: number }
export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** After every batch; epoch and batch are 1-based, loss is that batch's mean loss. */
  onProgress?: (p: TrainProgress) => void;
  signal?: AbortSignal;
}
export interface TrainResult {
  /** Examples in the local dataset (the FedAvg weight), not examples x epochs. */
  numExamples: number;
  /** Mean training loss / accuracy over the last epoch, measured on each batch before its update. */
  loss: number;
  accuracy: number;
  seconds: number;
  /** Examples processed (n x epochs) per wall-clock second, yields included. */
  samplesPerSec: number;
}

const EPS = 1e-7; // same clipping as Keras' crossentropy on probabilities

/** Model input size and output classes, checked against the dataset before any work. */
function checkShapes(model: tf.LayersModel, ds: Dataset): { inShape: number[]; classes: number } {
  const inShape = model.inputs[0]!.shape.slice(1) as number[];
  const features = inShape.reduce((a, b) => a * b, 1);
  if (features !== ds.features)
    throw new ValidationError(`dataset: ${ds.features} features per example, model "${model.name}" expects ${features}`);
  const classes = model.outputs[0]!.shape.at(-1) as number;
  for (let i = 0; i < ds.n; i++) {
    const l = ds.y[i]!;
    if (!(l >= 0 && l < classes)) throw new ValidationError(`dataset: label ${l} of example ${i} is outside [0, ${classes})`);
  }
  return { inShape, classes };
}

/** Sum (not mean) of per-example crossentropy on softmax outputs. */
function crossentropy(probs: tf.Tensor, labels: tf.Tensor1D, classes: number): tf.Scalar {
  const p = tf.clipByValue(probs, EPS, 1 - EPS);
  return tf.neg(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.log(p)))) as tf.Scalar;
}

function gather(ds: Dataset, idx: Int32Array, from: number, to: number): { x: Float32Array; y: Int32Array } {
  const f = ds.features;
  const x = new Float32Array((to - from) * f);
  const y = new Int32Array(to - from);
  for (let k = from; k < to; k++) {
    const i = idx[k]!;
    x.set(ds.x.subarray(i * f, (i + 1) * f), (k - from) * f);
    y[k - from] = ds.y[i]!;
  }
  return { x, y };
}

function countCorrect(pred: Int32Array | Float32Array | Uint8Array, y: Int32Array): number {
  let c = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) c++;
  return c;
}

// Lets the agent's gRPC streams and timers run between batches (wasm/cpu kernels are synchronous).
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function trainLocal(model: tf.LayersModel, ds: Dataset, opts: TrainOptions): Promise<TrainResult> {
  const { epochs, batchSize, learningRate, seed, onProgress, signal } = opts;
  if (!Number.isInteger(epochs) || epochs < 1) throw new ValidationError(`epochs: expected a positive integer, got ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValidationError(`batchSize: expected a positive integer, got ${batchSize}`);
  if (!(learningRate > 0 && Number.isFinite(learningRate))) throw new ValidationError(`learningRate: expected a positive number, got ${learningRate}`);
  if (ds.n < 1) throw new ValidationError('dataset: no examples to train on');
  const { inShape, classes } = checkShapes(model, ds);
  signal?.throwIfAborted();

  const rng = createRng(seed);
  const order = Int32Array.from({ length: ds.n }, (_, i) => i);
  const batches = Math.ceil(ds.n / batchSize);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = tf.train.sgd(learningRate);
  const start = performance.now();
  let lossSum = 0, correct = 0;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      shuffleInPlace(order, rng);
      lossSum = 0;
      correct = 0;
      for (let b = 0; b < batches; b++) {
        const from = b * batchSize, to = Math.min(ds.n, from + batchSize);
        const { x, y } = gather(ds, order, from, to);
        let pred: Int32Array | undefined;
        const cost = tf.tidy(() => {
          const xs = tf.tensor(x, [to - from, ...inShape], 'float32');
          const ys = tf.tensor1d(y, 'int32');
          return optimizer.minimize(() => {
            const probs = model.apply(xs, { training: true }) as tf.Tensor;
            pred = tf.argMax(probs, -1).dataSync() as Int32Array;
            return tf.div(crossentropy(probs, ys, classes), to - from);
          }, true, vars)!;
        });
        const loss = (await cost.data())[0]!;
        cost.dispose();
        if (!Number.isFinite(loss)) throw new ValidationError(`training diverged: loss is ${loss} at epoch ${epoch} batch ${b + 1}; lower learningRate`);
        lossSum += loss * (to - from);
        correct += countCorrect(pred!, y);
        onProgress?.({ epoch, batch: b + 1, batches, loss });
        await yieldToEventLoop();
        signal?.throwIfAborted();
      }
    }
  } finally {
    optimizer.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return { numExamples: ds.n, loss: lossSum / ds.n, accuracy: correct / ds.n, seconds, samplesPerSec: (ds.n * epochs) / seconds };
}

export async function evaluate(
  model: tf.LayersModel,
  ds: Dataset,
  batchSize = 500,
): Promise<{ loss: number; accuracy: number; numExamples: number }> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValidationError(`batchSize: expected a positive integer, got ${batchSize}`);
  if (ds.n === 0) return { loss: 0, accuracy: 0, numExamples: 0 };
  const { inShape, classes } = checkShapes(model, ds);
  const order = Int32Array.from({ length: ds.n }, (_, i) => i);
  let lossSum = 0, correct = 0;
  for (let from = 0; from < ds.n; from += batchSize) {
    const to = Math.min(ds.n, from + batchSize);
    const { x, y } = gather(ds, order, from, to);
    const [l, pred] = tf.tidy(() => {
      const probs = model.predict(tf.tensor(x, [to - from, ...inShape], 'float32')) as tf.Tensor;
      return [crossentropy(probs, tf.tensor1d(y, 'int32'), classes).dataSync()[0]!, tf.argMax(probs, -1).dataSync()] as const;
    });
    lossSum += l;
    correct += countCorrect(pred as Int32Array, y);
    await yieldToEventLoop();
  }
  return { loss: lossSum / ds.n, accuracy: correct / ds.n, numExamples: ds.n };
}
