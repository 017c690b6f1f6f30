/** Local training for FedAvg clients (the task's loss and optimizer over minibatches) and evaluation with its metrics, without leaking tensors. */
import * as tf from '@tensorflow/tfjs';
import { ValidationError, type ResolvedTask } from '@fedge/proto';
import { createRng, shuffleInPlace } from './rng.js';
import { targetWidth, type Dataset } from './dataset.js';
import { checkDataset, checkTask, modelShape, type EvalTask } from './task/check.js';
import { labelTensor, lossFunction } from './task/losses.js';
import { createOptimizer } from './task/optimizers.js';
import { ProximalTerm } from './task/proximal.js';
import { ControlVariateTerm } from './task/scaffold.js';
import { accuracy, computeMetrics, regressionStats } from './task/metrics.js';

export interface TrainProgress { epoch: number; batch: number; batches: number; loss: number }
export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Plain SGD's rate when `task` is absent (then required); with a task, task.optimizer.learningRate is used. */
  learningRate?: number;
  seed: number;
  /** After every batch; epoch and batch are 1-based, loss is that batch's mean loss. */
  onProgress?: (p: TrainProgress) => void;
  signal?: AbortSignal;
  /**
   * Loss, optimizer and metrics. Absent: classification, sparse crossentropy, SGD at learningRate, accuracy.
   * task.proximalMu > 0 (FedProx): the optimizer minimizes loss + (mu/2)·Σ||w − w0||² over the trainable weights, w0
   * the model's weights when this call starts (the global model the task carried).
   */
  task?: ResolvedTask;
  /**
   * SCAFFOLD (task/scaffold.ts): c − c_i, model-sized in the model's weight order; every step descends along
   * g(y) + (c − c_i). SGD only: the paper's correction is defined for plain SGD steps, so any other optimizer is refused.
   */
  controlCorrection?: Float32Array;
}
export interface TrainResult {
  /** Examples in the local dataset (the FedAvg weight), not examples x epochs. */
  numExamples: number;
  /**
   * Mean training loss over the last epoch, measured on each batch before its update (as accuracy and metrics). The
   * task's loss only: a proximal term (task.proximalMu) is never included, so losses compare across mu.
   */
  loss: number;
  /** Classification, binary and multilabel (per label) accuracy; NaN for regression. */
  accuracy: number;
  /** The task's metrics over the last epoch. */
  metrics: Record<string, number>;
  seconds: number;
  /** Examples processed (n x epochs) per wall-clock second, yields included. */
  samplesPerSec: number;
  /** Optimizer steps taken (epochs x batches): SCAFFOLD's K. */
  steps: number;
}
export interface EvalResult {
  loss: number;
  /** As TrainResult.accuracy. */
  accuracy: number;
  numExamples: number;
  /**
   * `loss`, the task's metrics and the sums combineEvalMetrics needs to combine agents exactly (regression: mse,
   * sse, ysum, ysumsq, count over all target values, and per column with several targets).
   */
  metrics: Record<string, number>;
}

/** Today's MNIST behaviour, for callers that name no task. */
function defaultTask(model: tf.LayersModel): EvalTask {
  return { type: 'classification', loss: 'sparse-categorical-crossentropy', huberDelta: 1, metrics: ['accuracy'], outputs: modelShape(model).outputs };
}

/** Rows `idx[from..to)`: features, and labels (one per example, or `targets` values each) in the dataset's array type. */
function gather(ds: Dataset, idx: Int32Array, from: number, to: number): { x: Float32Array; y: Int32Array | Float32Array } {
  const f = ds.features, t = targetWidth(ds);
  const x = new Float32Array((to - from) * f);
  const y = ds.y instanceof Int32Array ? new Int32Array((to - from) * t) : new Float32Array((to - from) * t);
  for (let k = from; k < to; k++) {
    const i = idx[k]!;
    x.set(ds.x.subarray(i * f, (i + 1) * f), (k - from) * f);
    y.set(ds.y.subarray(i * t, (i + 1) * t), (k - from) * t);
  }
  return { x, y };
}

/** Classification metrics need the predicted class only; every other task keeps the raw outputs (probabilities, values). */
const predictions = (task: EvalTask, out: tf.Tensor2D): Int32Array | Float32Array =>
  (task.type === 'classification' ? tf.argMax(out, -1).dataSync() : out.dataSync()) as Int32Array | Float32Array;

// Lets the agent's gRPC streams and timers run between batches (wasm/cpu kernels are synchronous).
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function trainLocal(model: tf.LayersModel, ds: Dataset, opts: TrainOptions): Promise<TrainResult> {
  const { epochs, batchSize, learningRate, seed, onProgress, signal } = opts;
  if (!Number.isInteger(epochs) || epochs < 1) throw new ValidationError(`epochs: expected a positive integer, got ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValidationError(`batchSize: expected a positive integer, got ${batchSize}`);
  if (opts.task) checkTask(opts.task);
  else if (!(learningRate !== undefined && learningRate > 0 && Number.isFinite(learningRate)))
    throw new ValidationError(`learningRate: expected a positive number, got ${learningRate}`);
  const task: ResolvedTask = opts.task ?? { ...defaultTask(model), optimizer: { name: 'sgd', learningRate: learningRate! } };
  const mu = task.proximalMu;
  if (mu !== undefined && !(mu >= 0 && Number.isFinite(mu))) throw new ValidationError(`task.proximalMu: expected a number >= 0, got ${mu}`);
  if (ds.n < 1) throw new ValidationError('dataset: no examples to train on');
  if (opts.controlCorrection && task.optimizer.name !== 'sgd')
    throw new ValidationError(`optimizer.name: scaffold corrects plain SGD steps; this task trains with ${task.optimizer.name}; use "optimizer": { "name": "sgd" }`);
  const { inShape, outputs } = checkDataset(model, ds, task);
  signal?.throwIfAborted();

  const lossFn = lossFunction(task.loss, task.huberDelta);
  const t = targetWidth(ds);
  // The last epoch's labels and predictions in visiting order, for its metrics (one class index per example, or t values).
  const seenY = ds.y instanceof Int32Array ? new Int32Array(ds.n * t) : new Float32Array(ds.n * t);
  const seenPred = task.type === 'classification' ? new Int32Array(ds.n) : new Float32Array(ds.n * t);
  const rng = createRng(seed);
  const order = Int32Array.from({ length: ds.n }, (_, i) => i);
  const batches = Math.ceil(ds.n / batchSize);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = createOptimizer(task.optimizer);
  // Absent or 0: plain minimize, bit-identical to training without the field.
  const proximal = mu ? new ProximalTerm(vars, mu) : undefined;
  const scaffold = opts.controlCorrection ? new ControlVariateTerm(model, vars, opts.controlCorrection) : undefined;
  const start = performance.now();
  let lossSum = 0;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      shuffleInPlace(order, rng);
      lossSum = 0;
      const last = epoch === epochs;
      for (let b = 0; b < batches; b++) {
        const from = b * batchSize, to = Math.min(ds.n, from + batchSize), rows = to - from;
        const { x, y } = gather(ds, order, from, to);
        let pred: Int32Array | Float32Array | undefined;
        const cost = tf.tidy(() => {
          const xs = tf.tensor(x, [rows, ...inShape], 'float32');
          const ys = labelTensor(task.loss, y, rows, outputs);
          const f = () => {
            const out = model.apply(xs, { training: true }) as tf.Tensor2D;
            if (last) pred = predictions(task, out);
            return lossFn(out, ys);
          };
          if (!proximal && !scaffold) return optimizer.minimize(f, true, vars)!;
          // The task loss's gradients plus the proximal term's, mu·(w − w0), and SCAFFOLD's c − c_i; the returned cost is the loss alone.
          const { value, grads } = optimizer.computeGradients(f, vars);
          const g = scaffold ? scaffold.correct(vars, grads) : grads;
          optimizer.applyGradients(proximal ? proximal.gradients(g) : vars.map((v) => ({ name: v.name, tensor: g[v.name]! })));
          return value;
        });
        const loss = (await cost.data())[0]!;
        cost.dispose();
        if (!Number.isFinite(loss))
          throw new ValidationError(`training diverged: loss is ${loss} at epoch ${epoch} batch ${b + 1}; lower the learning rate (optimizer.learningRate)${proximal ? ' or task.proximalMu' : ''}`);
        lossSum += loss * rows;
        if (last) {
          seenY.set(y, from * t);
          seenPred.set(pred!, from * t);
        }
        onProgress?.({ epoch, batch: b + 1, batches, loss });
        await yieldToEventLoop();
        signal?.throwIfAborted();
      }
    }
  } finally {
    optimizer.dispose();
    proximal?.dispose();
    scaffold?.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    numExamples: ds.n,
    loss: lossSum / ds.n,
    accuracy: accuracy(task.type, seenY, seenPred),
    metrics: computeMetrics(task.type, task.metrics, seenY, seenPred, t),
    seconds,
    samplesPerSec: (ds.n * epochs) / seconds,
    steps: epochs * batches,
  };
}

/** Inference-mode loss and metrics over `ds`; `task` absent: classification with sparse crossentropy and accuracy. */
export async function evaluate(model: tf.LayersModel, ds: Dataset, batchSize = 500, task?: EvalTask): Promise<EvalResult> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ValidationError(`batchSize: expected a positive integer, got ${batchSize}`);
  if (task) checkTask(task);
  const tk = task ?? defaultTask(model);
  if (ds.n === 0) return { loss: 0, accuracy: tk.type === 'regression' ? NaN : 0, numExamples: 0, metrics: {} };
  const { inShape, outputs } = checkDataset(model, ds, tk);
  const lossFn = lossFunction(tk.loss, tk.huberDelta);
  const t = targetWidth(ds);
  const order = Int32Array.from({ length: ds.n }, (_, i) => i);
  const pred = tk.type === 'classification' ? new Int32Array(ds.n) : new Float32Array(ds.n * t);
  let lossSum = 0;
  for (let from = 0; from < ds.n; from += batchSize) {
    const to = Math.min(ds.n, from + batchSize), rows = to - from;
    const { x, y } = gather(ds, order, from, to);
    lossSum += tf.tidy(() => {
      const out = model.predict(tf.tensor(x, [rows, ...inShape], 'float32')) as tf.Tensor2D;
      pred.set(predictions(tk, out), from * t);
      return lossFn(out, labelTensor(tk.loss, y, rows, outputs)).dataSync()[0]! * rows;
    });
    await yieldToEventLoop();
  }
  const loss = lossSum / ds.n;
  return {
    loss,
    accuracy: accuracy(tk.type, ds.y, pred),
    numExamples: ds.n,
    metrics: { loss, ...computeMetrics(tk.type, tk.metrics, ds.y, pred, t), ...(tk.type === 'regression' ? regressionStats(ds.y, pred, t) : {}) },
  };
}
