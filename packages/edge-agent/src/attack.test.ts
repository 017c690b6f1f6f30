import { afterAll, describe, expect, it } from 'vitest';
import * as ml from '@fedge/ml';
import { bytesToFloat32, createRng, float32ToBytes, modelDigest, type TaskMsg } from '@fedge/proto';
import type { Dataset } from '@fedge/ml';
import { AttackSpecError, attackDelta, flipLabels, formatAttack, parseAttack, type Attack } from './attack.js';
// The source modules; the executor's worker is the built dist/train-worker.js, which it refuses if older than its sources.
import { TaskExecutor } from './executor.js';
import { encodeLegacy, loadLocalData, type LocalData } from './data.js';
import { packUpdate } from './privacy.js';
import type { CoordinatorConnection } from './transport/connection.js';

describe('parseAttack', () => {
  it('parses every kind, sign-flip defaulting to scale 1', () => {
    expect(parseAttack('sign-flip')).toEqual({ kind: 'sign-flip', scale: 1 });
    expect(parseAttack('sign-flip:10')).toEqual({ kind: 'sign-flip', scale: 10 });
    expect(parseAttack('gaussian:0.5')).toEqual({ kind: 'gaussian', std: 0.5 });
    expect(parseAttack('constant:-2.5')).toEqual({ kind: 'constant', value: -2.5 });
    expect(parseAttack('constant:0')).toEqual({ kind: 'constant', value: 0 });
    expect(parseAttack('label-flip')).toEqual({ kind: 'label-flip' });
    for (const s of ['sign-flip:10', 'gaussian:0.5', 'constant:-2.5', 'label-flip']) expect(formatAttack(parseAttack(s))).toBe(s);
  });

  it.each([
    ['nope', /--attack: unknown attack "nope"; use sign-flip\[:SCALE\].*e\.g\. --attack sign-flip:10/],
    ['', /--attack: unknown attack/],
    ['sign-flip:0', /--attack sign-flip:SCALE: SCALE must be a positive number, got "0" \(e\.g\. --attack sign-flip:10\)/],
    ['sign-flip:-3', /SCALE must be a positive number, got "-3"/],
    ['sign-flip:x', /SCALE must be a positive number, got "x"/],
    ['sign-flip:', /--attack sign-flip needs SCALE/],
    ['gaussian', /--attack gaussian needs STD: gaussian:STD, e\.g\. --attack gaussian:1/],
    ['gaussian:-1', /--attack gaussian:STD: STD must be a positive number, got "-1"/],
    ['gaussian:Infinity', /STD must be a positive number/],
    ['constant', /--attack constant needs VALUE.*e\.g\. --attack constant:0\.5/],
    ['constant:NaN', /--attack constant:VALUE: VALUE must be a finite number, got "NaN"/],
    ['label-flip:1', /--attack label-flip takes no value.*use --attack label-flip/],
  ])('rejects %j naming the flag and the fix', (spec, msg) => {
    expect(() => parseAttack(spec)).toThrow(AttackSpecError);
    expect(() => parseAttack(spec)).toThrow(msg);
  });

  it('names the flag it is given', () => {
    expect(() => parseAttack('bogus', '--demo-attack')).toThrow(/^--demo-attack: unknown attack/);
  });
});

describe('attackDelta', () => {
  const honest = (): Float32Array => Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 0.01);

  it('sign-flip: delta := -SCALE * delta', () => {
    const d = honest();
    attackDelta(d, parseAttack('sign-flip:10'));
    const h = honest();
    for (let i = 0; i < d.length; i++) expect(d[i]).toBe(Math.fround(-10 * h[i]!));
    const one = honest();
    attackDelta(one, parseAttack('sign-flip'));
    for (let i = 0; i < one.length; i++) expect(one[i]).toBe(-h[i]!);
  });

  it('gaussian: N(0, STD^2) per parameter, the honest delta discarded, reproducible with a seeded rng', () => {
    const n = 200_001; // odd: the last Box-Muller pair is half used
    const d = new Float32Array(n).fill(1000);
    attackDelta(d, parseAttack('gaussian:0.5'), createRng(7));
    let sum = 0, sq = 0;
    for (const v of d) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / n, std = Math.sqrt(sq / n - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01); // 0.5 / sqrt(n) ~ 0.0011
    expect(std).toBeGreaterThan(0.49);
    expect(std).toBeLessThan(0.51);
    expect(d.every((v) => Number.isFinite(v) && Math.abs(v) < 5)).toBe(true); // nothing of the 1000s is left
    const again = new Float32Array(n);
    attackDelta(again, parseAttack('gaussian:0.5'), createRng(7));
    expect(again).toEqual(d);
    // Independent of the honest delta: the same rng gives the same noise whatever was trained.
    const other = honest();
    const ref = new Float32Array(other.length);
    attackDelta(other, parseAttack('gaussian:2'), createRng(3));
    attackDelta(ref, parseAttack('gaussian:2'), createRng(3));
    expect(other).toEqual(ref);
  });

  it('constant: every parameter := VALUE', () => {
    const d = honest();
    attackDelta(d, parseAttack('constant:0.25'));
    expect(d.every((v) => v === 0.25)).toBe(true);
  });

  it('label-flip leaves the delta alone (it poisons the data instead)', () => {
    const d = honest();
    attackDelta(d, parseAttack('label-flip'));
    expect(d).toEqual(honest());
  });
});

describe('flipLabels', () => {
  const x = new Float32Array([1, 2, 3, 4, 5, 6]);

  it('classification: y := K-1-y, features shared, the input untouched', () => {
    const ds: Dataset = { x, y: Int32Array.from([0, 3, 9, 5, 1, 8]), n: 6, features: 1, numClasses: 10 };
    const f = flipLabels(ds, 'classification');
    expect(Array.from(f.y)).toEqual([9, 6, 0, 4, 8, 1]);
    expect(f.y).toBeInstanceOf(Int32Array);
    expect(f.x).toBe(x);
    expect({ n: f.n, features: f.features, numClasses: f.numClasses }).toEqual({ n: 6, features: 1, numClasses: 10 });
    expect(Array.from(ds.y)).toEqual([0, 3, 9, 5, 1, 8]);
    expect(() => flipLabels({ ...ds, numClasses: 0 }, 'classification')).toThrow(/at least 2 classes/);
  });

  it('binary and multilabel: y := 1-y', () => {
    const bin: Dataset = { x, y: Float32Array.from([0, 1, 1, 0, 0, 1]), n: 6, features: 1, numClasses: 0, targets: 1 };
    expect(Array.from(flipLabels(bin, 'binary').y)).toEqual([1, 0, 0, 1, 1, 0]);
    const multi: Dataset = { x, y: Float32Array.from([0, 1, 1, 1, 0, 0]), n: 2, features: 3, numClasses: 0, targets: 3 };
    const f = flipLabels(multi, 'multilabel');
    expect(Array.from(f.y)).toEqual([1, 0, 0, 0, 1, 1]);
    expect(f.targets).toBe(3);
  });

  it('regression: y := -y', () => {
    const reg: Dataset = { x, y: Float32Array.from([1.5, -2, 0, 30]), n: 2, features: 3, numClasses: 0, targets: 2 };
    expect(Array.from(flipLabels(reg, 'regression').y)).toEqual([-1.5, 2, -0, -30]);
  });
});

describe('TaskExecutor with an attack', () => {
  const executors: TaskExecutor[] = [];
  let data: LocalData;
  const session = { agentId: 'a', sessionToken: 's' };
  afterAll(async () => {
    await Promise.all(executors.map((e) => e.close()));
  });

  async function setup() {
    await ml.initBackend('wasm');
    data ??= await loadLocalData({ spec: 'mnist', partition: 'iid', numPartitions: 16, partitionId: 0, seed: 42, holdoutFraction: 0.1 });
    const model = ml.createBuiltinModel('mnist-mlp', 1);
    const blob = ml.modelToBlob(model);
    model.dispose();
    const topologyJson = JSON.stringify(blob.topology);
    const bytes = float32ToBytes(blob.weights);
    const sha256 = modelDigest(topologyJson, blob.tensors, bytes);
    const header = { runId: 'r-attack', modelVersion: 1, topologyJson, tensors: blob.tensors, totalBytes: bytes.byteLength, sha256 };
    const conn = { fetchModel: async () => ({ header, bytes: bytes.slice() }) } as unknown as CoordinatorConnection;
    const task = (config: Partial<TaskMsg['config']> = {}): TaskMsg => ({
      taskId: 't', runId: header.runId, round: 1, modelVersion: 1, kind: 'train', modelSha256: sha256, modelBytes: bytes.byteLength,
      config: { epochs: 1, batchSize: 32, learningRate: 0.05, seed: 7, ...config }, deadlineUnixMs: 0,
    });
    const run = (attack: Attack | undefined, t: TaskMsg) => {
      const ex = new TaskExecutor(data, { backend: 'wasm', ...(attack ? { attack } : {}) });
      executors.push(ex);
      return ex.run(t, conn, session, new AbortController().signal);
    };
    return { blob, task, run };
  }

  it('model attacks change the delta before packUpdate (clipping still applies); metrics are what training reports', async () => {
    const { task, run } = await setup();
    const honest = await run(undefined, task());
    const flipped = await run(parseAttack('sign-flip:10'), task());
    const h = bytesToFloat32(honest.payload), f = bytesToFloat32(flipped.payload);
    expect(f.length).toBe(h.length);
    for (let i = 0; i < h.length; i++) if (f[i] !== Math.fround(-10 * h[i]!)) expect.fail(`parameter ${i}: ${f[i]} is not -10 x ${h[i]}`);
    const { train_seconds: _a, samples_per_sec: _b, ...fm } = flipped.header.metrics;
    const { train_seconds: _c, samples_per_sec: _d, ...hm } = honest.header.metrics;
    expect(fm).toEqual(hm);
    // The coordinator's clip bound holds on what the attacker sends, as for any client running this code.
    const clipped = await run(parseAttack('constant:1'), task({ clipNorm: 0.5 }));
    const c = bytesToFloat32(clipped.payload);
    const norm = Math.sqrt(c.reduce((s, v) => s + v * v, 0));
    expect(norm).toBeCloseTo(0.5, 4);
    expect(c.every((v) => v === c[0] && v > 0)).toBe(true);
  }, 60_000);

  it('label-flip trains on flipped training labels and evaluates honestly', async () => {
    const { blob, task, run } = await setup();
    const t = task({ seed: 11 });
    const honest = await run(undefined, t);
    const lf = await run(parseAttack('label-flip'), t);
    // The held-out split is not flipped: the federated evaluation of the global model is the honest one.
    expect(lf.header.metrics.eval_loss).toBe(honest.header.metrics.eval_loss);
    expect(lf.header.metrics.eval_accuracy).toBe(honest.header.metrics.eval_accuracy);
    // Bit-identical to training on the flipped legacy encoding (y := 9 - y on the digits).
    const model = await ml.modelFromBlob(blob);
    ml.setWeights(model, blob.weights);
    const encoded = await encodeLegacy(data);
    const tr = await ml.trainLocal(model, flipLabels(encoded.train, 'classification'), { epochs: 1, batchSize: 32, learningRate: 0.05, seed: 11 });
    const after = ml.getWeights(model).weights;
    model.dispose();
    const expected = packUpdate(after.map((w, i) => w - blob.weights[i]!), t.config);
    expect(Buffer.from(lf.payload).equals(Buffer.from(expected.payload))).toBe(true);
    expect(lf.header.metrics.train_loss).toBe(tr.loss);
    expect(Buffer.from(lf.payload).equals(Buffer.from(honest.payload))).toBe(false);
  }, 60_000);
});
