/**
 * Each loss/optimizer pair learns a known answer when trained through the agent: TaskExecutor gets a task whose
 * config.taskJson carries the resolved task and the fleet's preprocessing, its worker thread encodes the agent's raw
 * tables with it, trains, and returns a delta plus train_/eval_ metrics. Rounds are run by hand (global += delta), with
 * signed models served by a fake connection, as the coordinator would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ml from '@fedge/ml';
import {
  ValidationError,
  bytesToFloat32,
  createRng,
  float32ToBytes,
  generateSigningKeyPair,
  modelDigest,
  signModel,
  type LossName,
  type ModelHeaderMsg,
  type OptimizerName,
  type Preprocessing,
  type ResolvedTask,
  type TaskMsg,
  type TaskPayload,
} from '@fedge/proto';
import type { RawTable } from '@fedge/ml';
// The source modules; the executor's worker is the built dist/train-worker.js, which it refuses if older than its sources.
import { TaskExecutor } from './executor.js';
import { ModelTrust } from './model-trust.js';
import type { LocalData } from './data.js';
import type { CoordinatorConnection } from './transport/connection.js';

const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'momentum', 'adam', 'rmsprop', 'adagrad'];
const session = { agentId: 'a', sessionToken: 's' };

// ---------------------------------------------------------------- the agent's raw data

/** y = W·x + B (+ uniform noise of ±NOISE); x0 in [0, 4], x1 in [-1, 1], x2 in [-3, 1], so z-scoring really shifts and scales. */
const W = [0.8, -1.5, 2] as const, B = 0.5, NOISE = 0.02;
/** Binary label: (x0 - 2) - 1.5·x1 > 0, no example within 0.3 of the boundary (separable with a margin). */
const binaryScore = (x: number[]) => x[0]! - 2 - 1.5 * x[1]!;
/** Class names by the largest of three linear scores (a linear softmax can express it), top two at least 0.3 apart. */
const CLASS_SCORES: Record<string, (x: number[]) => number> = {
  red: (x) => x[0]! - 2,
  green: (x) => 1.5 * x[1]!,
  blue: (x) => -(x[0]! - 2) - x[1]!,
};
const colorOf = (x: number[]) => {
  const s = Object.entries(CLASS_SCORES).map(([c, f]) => [c, f(x)] as const).sort((a, b) => b[1] - a[1]);
  return { color: s[0]![0], margin: s[0]![1] - s[1]![1] };
};

/**
 * One table holding every task's columns (each task's preprocessing picks its features and target): numeric x0..x2,
 * regression target y, binary target yes (0/1), class index k (0..2) and class name color (categorical).
 */
function makeTable(n: number, seed: number): RawTable {
  const rng = createRng(seed);
  const cols = { x0: [] as number[], x1: [] as number[], x2: [] as number[], y: [] as number[], yes: [] as number[], k: [] as number[], color: [] as string[] };
  while (cols.y.length < n) {
    const x = [rng() * 4, rng() * 2 - 1, rng() * 4 - 3];
    const { color, margin } = colorOf(x);
    if (Math.abs(binaryScore(x)) < 0.3 || margin < 0.3) continue;
    cols.x0.push(x[0]!);
    cols.x1.push(x[1]!);
    cols.x2.push(x[2]!);
    cols.y.push(W.reduce((s, w, j) => s + w * x[j]!, B) + (rng() * 2 - 1) * NOISE);
    cols.yes.push(Number(binaryScore(x) > 0));
    cols.color.push(color);
    cols.k.push(Object.keys(CLASS_SCORES).indexOf(color));
  }
  const num = (name: keyof typeof cols) => ({ name, type: 'numeric' as const, values: Float64Array.from(cols[name] as number[]) });
  return {
    n,
    columns: [num('x0'), num('x1'), num('x2'), num('y'), num('yes'), num('k'), { name: 'color', type: 'categorical', values: cols.color }],
    targets: [],
    format: 'module',
    fingerprint: '0'.repeat(64),
    source: 'synthetic',
  };
}

let data: LocalData;
let executor: TaskExecutor;
const keys = generateSigningKeyPair();

beforeAll(async () => {
  await ml.initBackend('wasm'); // only for building the initial models on this thread
  // 150 training rows and 30 held out, split the way loadLocalData does.
  const { train, holdout } = ml.splitTable(makeTable(180, 11), 1 / 6, 3);
  data = { train, holdout, description: 'synthetic', profile: ml.profileTable(train) };
  // Models must be signed with this key: the executor refuses anything else.
  executor = new TaskExecutor(data, { backend: 'wasm', trust: new ModelTrust(keys.publicKey) });
  expect((await executor.start()).name).toBe('wasm');
});

afterAll(async () => {
  await executor?.close();
});

// ---------------------------------------------------------------- the coordinator's side, by hand

/** The fleet's preprocessing from this agent's join profile, as the coordinator's data step builds it. */
function preprocessing(features: string[], target: string, normalization: Preprocessing['normalization'], taskType: ResolvedTask['type']): Preprocessing {
  const combined = ml.combineProfiles([{ agentId: 'a', name: 'a', profile: data.profile }]);
  return ml.buildPreprocessing(combined.columns, { targets: [target], features, normalization, taskType });
}

const resolved = (type: ResolvedTask['type'], loss: LossName, name: OptimizerName, learningRate: number, outputs: number, metrics: ResolvedTask['metrics']): ResolvedTask =>
  ({ type, loss, huberDelta: 1, optimizer: { name, learningRate }, metrics, outputs });

/** The initial global model: createMlp with no hidden layer (a linear, logistic or softmax-regression model). */
function initialWeights(task: ResolvedTask, inputWidth: number, seed = 1): { topologyJson: string; tensors: ModelHeaderMsg['tensors']; weights: Float32Array } {
  const model = ml.createMlp({ inputWidth, hidden: [], outputs: task.outputs, activation: ml.outputActivationFor(task.type), seed });
  const blob = ml.modelToBlob(model);
  model.dispose();
  return { topologyJson: JSON.stringify(blob.topology), tensors: blob.tensors, weights: blob.weights };
}

interface Federation {
  /** The global weights after the last round: out/kernel [inputWidth x outputs] row-major, then out/bias. */
  global: Float32Array;
  /** Metrics of every round's train result. */
  rounds: Record<string, number>[];
  /** Metrics of an evaluate task on the final global model (eval_* over the holdout). */
  final: Record<string, number>;
}

/**
 * Runs `rounds` train tasks, each on the previous round's global model (served signed, version by version), adding the
 * returned delta to the global, then one evaluate task on the result.
 */
async function federate(runId: string, payload: TaskPayload, o: { rounds: number; epochs: number; batchSize: number; seed?: number }): Promise<Federation> {
  const init = initialWeights(payload.task, payload.preprocessing.inputWidth, o.seed ?? 1);
  const served = new Map<number, { header: ModelHeaderMsg; bytes: Uint8Array }>();
  const conn = {
    fetchModel: async (req: { runId: string; modelVersion: number }) => {
      const m = served.get(req.modelVersion);
      if (req.runId !== runId || !m) throw new Error(`no model ${req.runId} v${req.modelVersion}`);
      return { header: m.header, bytes: m.bytes.slice() };
    },
  } as unknown as CoordinatorConnection;
  const taskJson = JSON.stringify(payload);
  const serve = (version: number, weights: Float32Array, kind: 'train' | 'evaluate'): TaskMsg => {
    const bytes = float32ToBytes(weights.slice());
    const sha256 = modelDigest(init.topologyJson, init.tensors as never, bytes);
    served.set(version, { header: { runId, modelVersion: version, topologyJson: init.topologyJson, tensors: init.tensors, totalBytes: bytes.byteLength, sha256 }, bytes });
    return {
      taskId: `${runId}-${version}`, runId, round: version, modelVersion: version, kind, modelSha256: sha256, modelBytes: bytes.byteLength,
      config: { epochs: o.epochs, batchSize: o.batchSize, learningRate: payload.task.optimizer.learningRate, seed: 100 + version, taskJson },
      deadlineUnixMs: 0, modelSignature: signModel(keys.privateKey, { runId, version, sha256 }),
    };
  };
  const global = init.weights.slice();
  const rounds: Record<string, number>[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const r = await executor.run(serve(round, global, 'train'), conn, session, new AbortController().signal);
    expect(r.header.kind).toBe('train');
    expect(r.header.encoding).toBe('float32-delta');
    expect(r.header.numExamples).toBe(data.train.n);
    const delta = bytesToFloat32(r.payload);
    expect(delta.length).toBe(global.length);
    for (let i = 0; i < global.length; i++) global[i]! += delta[i]!;
    rounds.push(r.header.metrics);
  }
  const ev = await executor.run(serve(o.rounds + 1, global, 'evaluate'), conn, session, new AbortController().signal);
  expect(ev.header.kind).toBe('evaluate');
  expect(ev.header.metrics['eval_examples']).toBe(data.holdout.n);
  return { global, rounds, final: ev.header.metrics };
}

// ---------------------------------------------------------------- tests

describe('through the agent: each loss/optimizer pair learns a known answer', () => {
  // Fresh optimizer state every round means every round starts with full-size adaptive steps (adam, rmsprop, adagrad):
  // the rates are small enough that those restarts do not kick the weights out of the tolerance. MAE's gradient does
  // not shrink near the optimum, so it needs smaller steps too.
  const RATES: Record<'smooth' | 'mae', Record<OptimizerName, number>> = {
    smooth: { sgd: 0.1, momentum: 0.03, adam: 0.02, rmsprop: 0.01, adagrad: 0.3 },
    mae: { sgd: 0.03, momentum: 0.005, adam: 0.02, rmsprop: 0.01, adagrad: 0.15 },
  };
  /** What the loss of a batch is in terms of the metrics of the same predictions: tells the losses apart. */
  const LOSS_FROM_METRICS: Record<'mse' | 'mae' | 'huber', (rmse: number, mae: number) => number> = {
    mse: (rmse) => rmse ** 2,
    mae: (_, mae) => mae,
    // Every residual is far below huberDelta 1 once fitted: 0.5·e².
    huber: (rmse) => 0.5 * rmse ** 2,
  };
  const near = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

  for (const loss of ['mse', 'mae', 'huber'] as const)
    it(`linear regression (zscore) with ${loss} recovers y = Xw + b within 0.05 with every optimizer`, async () => {
      const pre = preprocessing(['x0', 'x1', 'x2'], 'y', 'zscore', 'regression');
      // The agent encodes (x - shift) / scale with the fleet's statistics: real shifts and scales, so de-normalizing matters.
      const specs = pre.features.map((f) => (f.kind === 'numeric' ? f : expect.unreachable(`feature ${f.name} is ${f.kind}`)));
      expect(specs.map((f) => f.name)).toEqual(['x0', 'x1', 'x2']);
      expect(Math.abs(specs[0]!.shift - 2)).toBeLessThan(0.5);
      expect(Math.abs(specs[2]!.shift + 1)).toBeLessThan(0.5);
      for (const name of OPTIMIZERS) {
        const task = resolved('regression', loss, name, RATES[loss === 'mae' ? 'mae' : 'smooth'][name], 1, ['rmse', 'mae', 'r2']);
        const f = await federate(`reg-${loss}-${name}`, { task, preprocessing: pre }, { rounds: 6, epochs: 10, batchSize: 16 });
        const what = `${loss}/${name}`;
        // De-normalize: y = Σ k_j (x_j - shift_j) / scale_j + b'  =>  w_j = k_j / scale_j, b = b' - Σ k_j shift_j / scale_j.
        const kernel = Array.from(f.global.subarray(0, 3)), bias = f.global[3]!;
        const w = kernel.map((k, j) => k / specs[j]!.scale);
        const b = bias - kernel.reduce((s, k, j) => s + (k * specs[j]!.shift) / specs[j]!.scale, 0);
        w.forEach((v, j) => expect(Math.abs(v - W[j]!), `${what} w${j} = ${v}`).toBeLessThan(0.05));
        expect(Math.abs(b - B), `${what} b = ${b}`).toBeLessThan(0.05);
        // The agent's own metrics: the initial random model was far off; the final global model's holdout RMSE is
        // near the noise (std 0.012).
        expect(f.rounds[0]!['eval_rmse']!, `${what} initial eval_rmse`).toBeGreaterThan(1);
        expect(f.final['eval_rmse'], `${what} eval_rmse`).toBeLessThan(0.05);
        expect(f.final['eval_r2'], `${what} eval_r2`).toBeGreaterThan(0.999);
        expect(f.final['eval_accuracy'], 'regression has no accuracy').toBeUndefined();
        const last = f.rounds.at(-1)!;
        expect(last['train_rmse'], `${what} train_rmse`).toBeLessThan(0.05);
        expect(last['train_r2'], `${what} train_r2`).toBeGreaterThan(0.999);
        // The worker trained and evaluated with this task's loss, not another one.
        expect(near(last['train_loss']!, LOSS_FROM_METRICS[loss](last['train_rmse']!, last['train_mae']!)), `${what} train_loss`).toBeLessThan(1e-3);
        expect(near(f.final['eval_loss']!, LOSS_FROM_METRICS[loss](f.final['eval_rmse']!, f.final['eval_mae']!)), `${what} eval_loss`).toBeLessThan(1e-3);
      }
    }, 30_000);

  it("trains with the task's loss and optimizer: each pair gives its own delta, the same pair the same one", async () => {
    const pre = preprocessing(['x0', 'x1', 'x2'], 'y', 'zscore', 'regression');
    const deltas = new Map<string, Float32Array>();
    for (const loss of ['mse', 'mae', 'huber'] as const)
      for (const name of OPTIMIZERS) {
        // One round of one epoch from the same initial model, same rate and seed: only the loss and optimizer differ.
        const task = resolved('regression', loss, name, 0.01, 1, ['rmse']);
        const f = await federate(`pair-${loss}-${name}`, { task, preprocessing: pre }, { rounds: 1, epochs: 1, batchSize: 16 });
        deltas.set(`${loss}/${name}`, f.global);
      }
    const keys = [...deltas.keys()];
    for (let i = 0; i < keys.length; i++)
      for (let j = i + 1; j < keys.length; j++) expect(deltas.get(keys[i]!), `${keys[i]} vs ${keys[j]}`).not.toEqual(deltas.get(keys[j]!));
    const again = await federate('pair-again', { task: resolved('regression', 'huber', 'adam', 0.01, 1, ['rmse']), preprocessing: pre }, { rounds: 1, epochs: 1, batchSize: 16 });
    expect(again.global).toEqual(deltas.get('huber/adam'));
  }, 30_000);

  it('logistic regression (normalization none) separates linearly separable data with every optimizer', async () => {
    const pre = preprocessing(['x0', 'x1'], 'yes', 'none', 'binary');
    expect(pre.features).toEqual([{ name: 'x0', kind: 'numeric', shift: 0, scale: 1, mean: expect.any(Number) }, { name: 'x1', kind: 'numeric', shift: 0, scale: 1, mean: expect.any(Number) }]);
    const rates: Record<OptimizerName, number> = { sgd: 1, momentum: 0.2, adam: 0.2, rmsprop: 0.05, adagrad: 1 };
    for (const name of OPTIMIZERS) {
      const task = resolved('binary', 'binary-crossentropy', name, rates[name], 1, ['accuracy', 'auc', 'f1']);
      const f = await federate(`bin-${name}`, { task, preprocessing: pre }, { rounds: 3, epochs: 10, batchSize: 16 });
      const last = f.rounds.at(-1)!;
      expect(last, name).toMatchObject({ train_accuracy: 1 });
      expect(f.final, name).toMatchObject({ eval_accuracy: 1, eval_auc: 1, eval_f1: 1 });
      expect(f.final['eval_loss'], name).toBeLessThan(0.2);
      // The learned boundary k0·x0 + k1·x1 + b = 0 points the way of the true one, x0 - 1.5·x1 - 2 = 0.
      const [k0, k1, b] = Array.from(f.global);
      const cos = (k0! - 1.5 * k1! - 2 * b!) / Math.hypot(k0!, k1!, b!) / Math.hypot(1, 1.5, 2);
      expect(cos, `${name}: weights ${[k0, k1, b].join(', ')}`).toBeGreaterThan(0.98);
    }
  }, 30_000);

  it('softmax classification of class names (sparse and categorical crossentropy) learns the fleet vocabulary', async () => {
    const pre = preprocessing(['x0', 'x1'], 'color', 'zscore', 'classification');
    // The target vocabulary comes from the preprocessing: sorted class names, index = class.
    expect(pre.targets).toEqual([{ name: 'color', kind: 'categorical', values: ['blue', 'green', 'red'] }]);
    const classes = ml.classesOf(pre, ml.combineProfiles([{ agentId: 'a', name: 'a', profile: data.profile }]).columns);
    expect(classes).toBe(3);
    const runs: [LossName, OptimizerName, number][] = [
      ['sparse-categorical-crossentropy', 'sgd', 1], ['sparse-categorical-crossentropy', 'adam', 0.1], ['sparse-categorical-crossentropy', 'adagrad', 1],
      ['categorical-crossentropy', 'momentum', 0.3], ['categorical-crossentropy', 'rmsprop', 0.05], ['categorical-crossentropy', 'adam', 0.1],
    ];
    const color = data.holdout.columns.find((c) => c.name === 'color')!.values as string[];
    const xs = ['x0', 'x1'].map((n) => data.holdout.columns.find((c) => c.name === n)!.values as Float64Array);
    const specs = pre.features.map((f) => (f.kind === 'numeric' ? f : expect.unreachable()));
    for (const [loss, name, lr] of runs) {
      const what = `${loss}/${name}`;
      const task = resolved('classification', loss, name, lr, classes, ['accuracy', 'f1', 'precision', 'recall']);
      const f = await federate(`cls-${loss}-${name}`, { task, preprocessing: pre }, { rounds: 3, epochs: 10, batchSize: 16 });
      expect(f.rounds.at(-1), what).toMatchObject({ train_accuracy: 1 });
      expect(f.final, what).toMatchObject({ eval_accuracy: 1, eval_f1: 1, eval_precision: 1, eval_recall: 1 });
      // The global model, applied to the holdout's raw values by hand, names each example's class through the vocabulary.
      const kernel = f.global.subarray(0, 6), bias = f.global.subarray(6, 9);
      for (let i = 0; i < data.holdout.n; i++) {
        const z = xs.map((v, j) => (v[i]! - specs[j]!.shift) / specs[j]!.scale);
        const logits = [0, 1, 2].map((c) => bias[c]! + z[0]! * kernel[c]! + z[1]! * kernel[3 + c]!);
        const predicted = (pre.targets[0] as { values: string[] }).values[logits.indexOf(Math.max(...logits))];
        expect(predicted, `${what} holdout example ${i}`).toBe(color[i]);
      }
    }
  }, 30_000);

  it('rejects tasks whose labels the model cannot output with a ValidationError naming the example, and the same worker takes the next task', async () => {
    const trainer = () => (executor as unknown as { trainer: { dead?: Error } }).trainer;
    const before = trainer();
    const rejection = (runId: string, payload: TaskPayload) =>
      federate(runId, payload, { rounds: 1, epochs: 1, batchSize: 16 }).then(() => expect.unreachable(`${runId}: the task should have been rejected`), (e: unknown) => e as Error);

    // Class indices: the data has classes 0..2 (k), the task says the model has 2 outputs.
    const byIndex = preprocessing(['x0', 'x1'], 'k', 'zscore', 'classification');
    expect(byIndex.targets).toEqual([{ name: 'k', kind: 'numeric' }]);
    const k = data.train.columns.find((c) => c.name === 'k')!.values as Float64Array;
    const firstTwo = k.indexOf(2);
    expect(firstTwo).toBeGreaterThanOrEqual(0);
    const e1 = await rejection('bad-index', { task: resolved('classification', 'sparse-categorical-crossentropy', 'adam', 0.1, 2, ['accuracy']), preprocessing: byIndex });
    expect(e1).toBeInstanceOf(ValidationError);
    expect((e1 as ValidationError).code).toBe('E_VALIDATION');
    expect(e1.message).toContain(`example ${firstTwo} (0-based, after partition and holdout), target 'k': class 2 is outside 0..1 (the model has 2 classes)`);

    // Class names: the fleet's vocabulary (say the other agents have no red) lacks one of this agent's labels.
    const byName = preprocessing(['x0', 'x1'], 'color', 'zscore', 'classification');
    const narrowed: Preprocessing = { ...byName, targets: [{ name: 'color', kind: 'categorical', values: ['blue', 'green'] }] };
    const colors = data.train.columns.find((c) => c.name === 'color')!.values as string[];
    const firstRed = colors.indexOf('red');
    expect(firstRed).toBeGreaterThanOrEqual(0);
    const e2 = await rejection('bad-name', { task: resolved('classification', 'categorical-crossentropy', 'adam', 0.1, 2, ['accuracy']), preprocessing: narrowed });
    expect(e2).toBeInstanceOf(ValidationError);
    expect(e2.message).toContain(`example ${firstRed} (0-based, after partition and holdout), target 'color': 'red' is not one of the fleet's classes (blue, green)`);

    // A validation error leaves the worker alone: the same thread trains the next task (k with 3 classes) to a perfect fit.
    const good = resolved('classification', 'sparse-categorical-crossentropy', 'adam', 0.1, 3, ['accuracy']);
    const f = await federate('good-index', { task: good, preprocessing: byIndex }, { rounds: 3, epochs: 10, batchSize: 16 });
    expect(trainer()).toBe(before);
    expect(trainer().dead).toBeUndefined();
    expect(f.rounds.at(-1)).toMatchObject({ train_accuracy: 1 });
    expect(f.final).toMatchObject({ eval_accuracy: 1 });
  }, 30_000);
});

describe('through the agent: FedProx (task.proximalMu)', () => {
  it('a task with proximalMu trains and returns a smaller delta than the same task without it', async () => {
    const pre = preprocessing(['x0', 'x1', 'x2'], 'y', 'zscore', 'regression');
    const plain = resolved('regression', 'mse', 'sgd', 0.1, 1, ['rmse']);
    const init = initialWeights(plain, pre.inputWidth).weights;
    // One round from the same initial model, rate and seed, full batches (no minibatch noise around either minimizer):
    // the returned delta is global − init.
    const run = async (runId: string, task: ResolvedTask) => {
      const f = await federate(runId, { task, preprocessing: pre }, { rounds: 1, epochs: 30, batchSize: data.train.n });
      return { delta: Array.from(f.global, (v, i) => v - init[i]!), metrics: f.rounds[0]! };
    };
    const norm = (d: number[]) => Math.hypot(...d);
    const free = await run('prox-0', plain);
    const prox = await run('prox-10', { ...plain, proximalMu: 10 });
    // z-scored, nearly uncorrelated features: the MSE's curvature is about 2 along every weight and the bias, so the
    // proximal minimizer is w0 + 2/(2 + mu)·(w* − w0): mu 10 keeps the delta at about 1/6 of the free one, same direction
    // (measured: 0.758 vs 3.84, ratio 0.197; the rows dropped near the class boundaries correlate x0 and x1 a little).
    const ratio = norm(prox.delta) / norm(free.delta);
    expect(norm(free.delta)).toBeGreaterThan(1);
    expect(ratio, `delta norm ${norm(prox.delta)} with mu 10 vs ${norm(free.delta)} without`).toBeGreaterThan(0.12);
    expect(ratio, `delta norm ${norm(prox.delta)} with mu 10 vs ${norm(free.delta)} without`).toBeLessThan(0.25);
    const cos = prox.delta.reduce((s, v, i) => s + v * free.delta[i]!, 0) / norm(prox.delta) / norm(free.delta);
    expect(cos).toBeGreaterThan(0.98);
    // It trained: train_ metrics came back, its loss is the task's MSE (no proximal term), worse than the free fit's.
    expect(free.metrics['train_rmse']).toBeLessThan(0.05);
    expect(prox.metrics['train_rmse']).toBeGreaterThan(1);
    expect(Math.abs(prox.metrics['train_loss']! - prox.metrics['train_rmse']! ** 2) / prox.metrics['train_loss']!).toBeLessThan(1e-3);
  }, 30_000);
});
