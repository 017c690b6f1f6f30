/** TaskExecutor trains in a worker thread: the main thread stays responsive, abort and crashes behave, results stay bit-identical. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ml from '@fedge/ml';
import { float32ToBytes, modelDigest, type TaskMsg } from '@fedge/proto';
// The source modules; the executor's worker is the built dist/train-worker.js, which it refuses if older than its sources.
import { TaskExecutor } from './executor.js';
import { TrainingWorkerError } from './train-worker-client.js';
import { encodeLegacy, loadLocalData, type LocalData } from './data.js';
import { packUpdate } from './privacy.js';
import type { CoordinatorConnection } from './transport/connection.js';

let data: LocalData;
const executors: TaskExecutor[] = [];
const session = { agentId: 'a', sessionToken: 's' };

function fixture(name: 'mnist-mlp' | 'mnist-cnn', seed = 1) {
  const model = ml.createBuiltinModel(name, seed);
  const blob = ml.modelToBlob(model);
  model.dispose();
  const topologyJson = JSON.stringify(blob.topology);
  const bytes = float32ToBytes(blob.weights);
  const sha256 = modelDigest(topologyJson, blob.tensors, bytes);
  const header = { runId: `r-${name}`, modelVersion: 1, topologyJson, tensors: blob.tensors, totalBytes: bytes.byteLength, sha256 };
  const conn = { fetchModel: async () => ({ header, bytes: bytes.slice() }) } as unknown as CoordinatorConnection;
  const task = (config: Partial<TaskMsg['config']> = {}): TaskMsg => ({
    taskId: `t-${name}`, runId: header.runId, round: 1, modelVersion: 1, kind: 'train', modelSha256: sha256, modelBytes: bytes.byteLength,
    config: { epochs: 1, batchSize: 32, learningRate: 0.05, seed: 7, ...config }, deadlineUnixMs: 0,
  });
  return { blob, conn, task };
}

function executor(opts: { slowdown?: number; partialWork?: number; partialWorkSeed?: number } = {}): TaskExecutor {
  const ex = new TaskExecutor(data, { backend: 'wasm', ...opts });
  executors.push(ex);
  return ex;
}

beforeAll(async () => {
  await ml.initBackend('wasm'); // only for building fixtures on this thread
  data = await loadLocalData({ spec: 'mnist', partition: 'iid', numPartitions: 8, partitionId: 0, seed: 42, holdoutFraction: 0.1 });
});

afterAll(async () => {
  await Promise.all(executors.map((e) => e.close()));
});

describe('TaskExecutor training worker', () => {
  it('reports the backend its worker initialised', async () => {
    const info = await executor().start();
    expect(info.name).toBe('wasm');
  });

  it('keeps the main thread responsive while training the CNN', async () => {
    const { conn, task } = fixture('mnist-cnn');
    const ex = executor();
    await ex.start();
    // A 10 ms timer on this thread: on the main thread, one CNN batch of 128 (and the 500-row evaluation) would hold it for
    // hundreds of milliseconds; in the worker it keeps firing.
    let last = performance.now(), maxGap = 0, ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 10);
    const r = await ex.run(task({ batchSize: 128 }), conn, session, new AbortController().signal).finally(() => clearInterval(timer));
    const m = r.header.metrics;
    const perBatchMs = (m.train_seconds! * 1000) / Math.ceil(data.train.n / 128);
    // Guard that the test means something: a batch takes far longer than the gap allowed.
    expect(perBatchMs).toBeGreaterThan(150);
    expect(ticks).toBeGreaterThan(20);
    expect(maxGap).toBeLessThan(100);
    expect(m.eval_examples).toBe(data.holdout.n);
    expect(r.header.numExamples).toBe(data.train.n);
  }, 120_000);

  it('gives bit-identical results to training on the main thread', async () => {
    const { blob, conn, task } = fixture('mnist-mlp', 3);
    const t = task({ seed: 11 });
    const r = await executor().run(t, conn, session, new AbortController().signal);
    // The pre-worker path: build, set the global weights, evaluate, train, delta.
    const model = await ml.modelFromBlob(blob);
    ml.setWeights(model, blob.weights);
    const encoded = await encodeLegacy(data);
    const ev = await ml.evaluate(model, encoded.holdout);
    const tr = await ml.trainLocal(model, encoded.train, { epochs: 1, batchSize: 32, learningRate: 0.05, seed: 11 });
    const after = ml.getWeights(model).weights;
    model.dispose();
    const expected = packUpdate(after.map((w, i) => w - blob.weights[i]!), t.config);
    expect(r.header.encoding).toBe(expected.encoding);
    expect(Buffer.from(r.payload).equals(Buffer.from(expected.payload))).toBe(true);
    expect(r.header.metrics.eval_loss).toBe(ev.loss);
    expect(r.header.metrics.train_loss).toBe(tr.loss);
  }, 60_000);

  it('stops training within about a batch when the task is aborted', async () => {
    const { conn, task } = fixture('mnist-cnn');
    const ex = executor();
    await ex.start();
    const ctl = new AbortController();
    const run = ex.run(task({ epochs: 20 }), conn, session, ctl.signal);
    await new Promise((r) => setTimeout(r, 2000));
    const t0 = performance.now();
    ctl.abort(new Error('round closed'));
    await expect(run).rejects.toThrow('round closed');
    // A CNN batch of 32 takes ~0.15-0.5 s here; 20 epochs would take minutes.
    expect(performance.now() - t0).toBeLessThan(3000);
    // The worker survives an abort and takes the next task.
    const r = await ex.run(task({ batchSize: 256 }), conn, session, new AbortController().signal);
    expect(r.header.numExamples).toBe(data.train.n);
  }, 120_000);

  it('fails the task with a clear error when the worker dies, and starts a fresh one for the next task', async () => {
    const { conn, task } = fixture('mnist-cnn');
    const ex = executor();
    await ex.start();
    const worker = (ex as unknown as { trainer: { worker: { terminate(): Promise<number> } } }).trainer.worker;
    const run = ex.run(task({ epochs: 20 }), conn, session, new AbortController().signal);
    await new Promise((r) => setTimeout(r, 1000));
    void worker.terminate(); // what a crash looks like from here: the thread is gone mid-task
    await expect(run).rejects.toBeInstanceOf(TrainingWorkerError);
    await expect(run).rejects.toThrow(/training worker exited/);
    const r = await ex.run(task({ batchSize: 256 }), conn, session, new AbortController().signal);
    expect(r.header.numExamples).toBe(data.train.n);
  }, 120_000);

  it('multiplies training time with --slowdown', async () => {
    const { conn, task } = fixture('mnist-mlp');
    const ex = executor({ slowdown: 3 });
    await ex.start();
    const t0 = performance.now();
    const r = await ex.run(task(), conn, session, new AbortController().signal);
    const wall = (performance.now() - t0) / 1000;
    expect(wall).toBeGreaterThanOrEqual(3 * r.header.metrics.train_seconds! * 0.95);
  }, 60_000);

  it('trains a random 1..E-1 of the epochs with --partial-work, and sends what that many epochs make', async () => {
    const { conn, task } = fixture('mnist-mlp');
    const straggler = executor({ partialWork: 1, partialWorkSeed: 5 });
    const whole = executor();
    const sent: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await straggler.run(task({ epochs: 4, batchSize: 256 }), conn, session, new AbortController().signal);
      const k = r.header.metrics.train_epochs!;
      sent.push(k);
      expect(Number.isInteger(k) && k >= 1 && k <= 3).toBe(true);
      // Bit-identical to a task that asked for k epochs: the straggler really stopped after k.
      const ref = await whole.run(task({ epochs: k, batchSize: 256 }), conn, session, new AbortController().signal);
      expect(Buffer.from(r.payload).equals(Buffer.from(ref.payload))).toBe(true);
    }
    // Probability 0: every task runs whole, and says so.
    const never = executor({ partialWork: 0 });
    const r = await never.run(task({ epochs: 2, batchSize: 256 }), conn, session, new AbortController().signal);
    expect(r.header.metrics.train_epochs).toBe(2);
    // Without the option the result carries no train_epochs (runs without simulation are unchanged).
    const plain = await whole.run(task({ epochs: 1, batchSize: 256 }), conn, session, new AbortController().signal);
    expect(plain.header.metrics.train_epochs).toBeUndefined();
  }, 120_000);
});
