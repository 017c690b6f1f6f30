/** ONNX exports with the fleet's preprocessing take raw values and predict what tfjs predicts on the encoded ones. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import type { FeatureSpec, Preprocessing, ResolvedTask, TargetSpec, TaskType } from '@fedge/proto';
import { initBackend } from '../backend.js';
import { modelToBlob } from '../weights.js';
import { encodeTable } from '../data/encode.js';
import type { RawTable } from '../data/table.js';
import { calibrateActivationRanges, exportOnnx, sanitizeTensorName, type OnnxExportOptions } from './index.js';
import { decodeModel } from './proto.js';

beforeAll(async () => void (await initBackend('wasm')));

const FEATURES: FeatureSpec[] = [
  { name: 'age', kind: 'numeric', shift: 40, scale: 12, mean: 41.5 },
  { name: 'color', kind: 'categorical', values: ['red', 'green', 'blue'] },
  { name: 'income $', kind: 'numeric', shift: 50_000, scale: 20_000, mean: 52_000 },
  { name: 'emb', kind: 'raw', width: 3 },
  { name: '2nd city', kind: 'categorical', values: ['a', 'b'] },
  { name: 'ratio', kind: 'numeric', shift: 0.5, scale: 0.25, mean: 0.4 },
];
const WIDTH = 11;
const N = 64;

/** Deterministic pseudo-random in [0, 1). */
const rnd = (i: number): number => (((Math.sin(i * 12.9898 + 78.233) * 43758.5453) % 1) + 1) % 1;

interface RawRows { numeric: Float32Array; color: string[]; emb: Float32Array; city: string[] }

/** Raw rows with missing numbers (NaN), unknown and missing categories. */
function rawRows(n: number): RawRows {
  const numeric = new Float32Array(n * 3);
  for (let r = 0; r < n; r++) {
    numeric[r * 3] = r % 7 === 0 ? NaN : 18 + rnd(r) * 60;
    numeric[r * 3 + 1] = r % 5 === 0 ? NaN : 10_000 + rnd(r + 100) * 120_000;
    numeric[r * 3 + 2] = r % 11 === 0 ? NaN : rnd(r + 200);
  }
  const colors = ['red', 'green', 'blue', 'purple', ''];
  return {
    numeric,
    color: Array.from({ length: n }, (_, r) => colors[r % colors.length]!),
    emb: Float32Array.from({ length: n * 3 }, (_, i) => rnd(i + 300) * 2 - 1),
    city: Array.from({ length: n }, (_, r) => ['a', 'b', 'zz'][r % 3]!),
  };
}

/** The contract of task.ts, written out independently of the graph: what agents feed the model. */
function encode(rows: RawRows, n: number): Float32Array {
  const out = new Float32Array(n * WIDTH);
  for (let r = 0; r < n; r++) {
    const row: number[] = [];
    let num = 0;
    for (const f of FEATURES) {
      if (f.kind === 'numeric') {
        const x = rows.numeric[r * 3 + num++]!;
        row.push(((Number.isNaN(x) ? f.mean : x) - f.shift) / f.scale);
      } else if (f.kind === 'categorical') {
        const v = f.name === 'color' ? rows.color[r]! : rows.city[r]!;
        row.push(...f.values.map((c) => (c === v ? 1 : 0)));
      } else row.push(...rows.emb.subarray(r * 3, r * 3 + 3));
    }
    out.set(row, r * WIDTH);
  }
  return out;
}

function feeds(rows: RawRows, n: number): Record<string, ort.Tensor> {
  return {
    numeric: new ort.Tensor('float32', rows.numeric, [n, 3]),
    color: new ort.Tensor('string', rows.color, [n, 1]),
    emb: new ort.Tensor('float32', rows.emb, [n, 3]),
    c_2nd_city: new ort.Tensor('string', rows.city, [n, 1]),
  };
}

const HEADS: Record<TaskType, { units: number; activation: 'softmax' | 'sigmoid' | 'linear'; targets: TargetSpec[] }> = {
  classification: { units: 3, activation: 'softmax', targets: [{ name: 'species', kind: 'categorical', values: ['x', 'y', 'z'] }] },
  binary: { units: 1, activation: 'sigmoid', targets: [{ name: 'churn', kind: 'categorical', values: ['no', 'yes'] }] },
  multilabel: { units: 2, activation: 'sigmoid', targets: [{ name: 'tag a', kind: 'numeric' }, { name: 'tag b', kind: 'numeric' }] },
  regression: { units: 2, activation: 'linear', targets: [{ name: 'price', kind: 'numeric' }, { name: 'qty', kind: 'numeric' }] },
};

function setup(type: TaskType): { model: tf.LayersModel; prep: Preprocessing; task: ResolvedTask } {
  const h = HEADS[type];
  // The builtin tabular MLP's shape: fc1.., relu hidden, `out` with the task's activation.
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [WIDTH], units: 24, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), biasInitializer: 'randomNormal' }),
      tf.layers.dense({ name: 'fc2', units: 7, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), biasInitializer: 'randomNormal' }),
      tf.layers.dense({ name: 'out', units: h.units, activation: h.activation, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  const prep: Preprocessing = { normalization: 'zscore', features: FEATURES, targets: h.targets, inputWidth: WIDTH };
  const loss = type === 'regression' ? 'mse' : type === 'classification' ? 'sparse-categorical-crossentropy' : 'binary-crossentropy';
  const task: ResolvedTask = { type, loss, huberDelta: 1, optimizer: { name: 'adam', learningRate: 0.01 }, metrics: [], outputs: h.units };
  return { model, prep, task };
}

async function run(bytes: Uint8Array, f: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  try {
    return await s.run(f);
  } finally {
    await s.release();
  }
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** The ONNX outputs as one [N, units] matrix (regression: per-target outputs side by side). */
function joined(out: ort.InferenceSession.OnnxValueMapType, names: string[], n: number): Float32Array {
  const cols = names.map((k) => out[k]!.data as Float32Array);
  const per = cols.map((c) => c.length / n);
  const width = per.reduce((a, b) => a + b, 0);
  const m = new Float32Array(n * width);
  for (let r = 0; r < n; r++) {
    let off = 0;
    cols.forEach((c, j) => {
      m.set(c.subarray(r * per[j]!, (r + 1) * per[j]!), r * width + off);
      off += per[j]!;
    });
  }
  return m;
}

describe.each(['classification', 'binary', 'multilabel', 'regression'] as TaskType[])('ONNX with preprocessing: %s', (type) => {
  let model: tf.LayersModel;
  let opts: OnnxExportOptions;
  const rows = rawRows(N);
  let ref: Float32Array;

  beforeAll(() => {
    const s = setup(type);
    model = s.model;
    opts = { preprocessing: s.prep, task: s.task };
    ref = tf.tidy(() => (model.predict(tf.tensor2d(encode(rows, N), [N, WIDTH])) as tf.Tensor).dataSync() as Float32Array);
  });
  afterAll(() => model.dispose());

  it('float32 on raw inputs (missing numbers, unknown categories) matches tfjs on encoded ones within 1e-4', async () => {
    const e = exportOnnx(modelToBlob(model), opts);
    expect(e.inputs).toEqual([
      { name: 'numeric', datatype: 'FP32', shape: [-1, 3] },
      { name: 'color', datatype: 'BYTES', shape: [-1, 1] },
      { name: 'emb', datatype: 'FP32', shape: [-1, 3] },
      { name: 'c_2nd_city', datatype: 'BYTES', shape: [-1, 1] },
    ]);
    const names = e.outputs.map((o) => o.name);
    expect(names).toEqual(type === 'regression' ? ['price', 'qty'] : ['output']);
    const out = await run(e.bytes, feeds(rows, N));
    expect(maxAbsDiff(joined(out, names, N), ref)).toBeLessThanOrEqual(1e-4);
    // batch 1
    const one = rawRows(1);
    const ref1 = tf.tidy(() => (model.predict(tf.tensor2d(encode(one, 1), [1, WIDTH])) as tf.Tensor).dataSync() as Float32Array);
    expect(maxAbsDiff(joined(await run(e.bytes, feeds(one, 1)), names, 1), ref1)).toBeLessThanOrEqual(1e-4);
  });

  // int8: weights per channel and activations per call lose precision; measured ~0.005 on probabilities and ~0.02 on
  // these regression values (outputs of magnitude ~1), so 0.05 absolute.
  it('int8 on raw inputs stays within 0.05 of tfjs', async () => {
    const e = exportOnnx(modelToBlob(model), { ...opts, quantize: 'int8' });
    expect(e.quantizedLayers).toEqual(['fc1', 'fc2', 'out']);
    const names = e.outputs.map((o) => o.name);
    const d = maxAbsDiff(joined(await run(e.bytes, feeds(rows, N)), names, N), ref);
    expect(d).toBeLessThanOrEqual(0.05);
    // Static activations: ranges calibrated on encoded rows (what the agent's training split holds) fit the graph,
    // whose first Dense sees the encoded tensor too.
    const blob = modelToBlob(model);
    const activationRanges = await calibrateActivationRanges(blob, encode(rows, N), N);
    const st = exportOnnx(blob, { ...opts, quantize: 'int8', activations: 'static', activationRanges });
    expect(maxAbsDiff(joined(await run(st.bytes, feeds(rows, N)), names, N), ref)).toBeLessThanOrEqual(0.05);
  });
});

describe('ONNX preprocessing vs the agents\' encoder', () => {
  it('a regression export on raw columns matches tfjs on encodeTable\'s encoding within 1e-4', async () => {
    const { model, prep, task } = setup('regression');
    const rows = rawRows(N);
    const num = (j: number) => Float64Array.from({ length: N }, (_, r) => rows.numeric[r * 3 + j]!);
    // The server sends a missing category (JSON null) as "", which is not in any vocabulary: zeros, like null here.
    const cat = (v: string[]) => v.map((s) => (s === '' ? null : s));
    const t: RawTable = {
      n: N,
      columns: [
        { name: 'age', type: 'numeric', values: num(0) },
        { name: 'color', type: 'categorical', values: cat(rows.color) },
        { name: 'income $', type: 'numeric', values: num(1) },
        { name: 'emb', type: 'block', width: 3, values: rows.emb },
        { name: '2nd city', type: 'categorical', values: cat(rows.city) },
        { name: 'ratio', type: 'numeric', values: num(2) },
        { name: 'price', type: 'numeric', values: new Float64Array(N) },
        { name: 'qty', type: 'numeric', values: new Float64Array(N) },
      ],
      targets: ['price', 'qty'],
      format: 'csv',
      fingerprint: '0'.repeat(64),
      source: 'test',
    };
    const ds = encodeTable(t, prep, task);
    const ref = tf.tidy(() => (model.predict(tf.tensor2d(ds.x, [N, WIDTH])) as tf.Tensor).dataSync() as Float32Array);
    const e = exportOnnx(modelToBlob(model), { preprocessing: prep, task });
    expect(maxAbsDiff(joined(await run(e.bytes, feeds(rows, N)), ['price', 'qty'], N), ref)).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });
});

describe('ONNX preprocessing metadata and checks', () => {
  it('records the input and output mapping, the preprocessing and the task in the model metadata', () => {
    const { model, prep, task } = setup('binary');
    const e = exportOnnx(modelToBlob(model), { preprocessing: prep, task });
    const meta = Object.fromEntries(decodeModel(e.bytes).metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta['fedge.inputs']!)).toEqual([
      { name: 'numeric', kind: 'numeric', columns: ['age', 'income $', 'ratio'] },
      { name: 'color', kind: 'categorical', columns: ['color'], values: ['red', 'green', 'blue'] },
      { name: 'emb', kind: 'raw', columns: ['emb'] },
      { name: 'c_2nd_city', kind: 'categorical', columns: ['2nd city'], values: ['a', 'b'] },
    ]);
    expect(JSON.parse(meta['fedge.outputs']!)).toEqual([{ name: 'output', kind: 'probability', columns: ['churn'], positive: 'yes' }]);
    expect(JSON.parse(meta['fedge.preprocessing']!)).toEqual(prep);
    expect(JSON.parse(meta['fedge.task']!)).toEqual(task);
    expect(decodeModel(e.bytes).opsetImport).toEqual([{ domain: '', version: 13 }, { domain: 'ai.onnx.ml', version: 2 }]);
    model.dispose();
  });

  it('sanitizes and de-duplicates names: output keeps "output", columns never collide', () => {
    expect(sanitizeTensorName('income $')).toBe('income__');
    expect(sanitizeTensorName('2nd')).toBe('c_2nd');
    expect(sanitizeTensorName('')).toBe('column');
    expect(sanitizeTensorName('été')).toBe('_t_');
    const model = tf.sequential({ layers: [tf.layers.dense({ name: 'out', inputShape: [4], units: 2, activation: 'softmax' })] });
    const prep: Preprocessing = {
      normalization: 'zscore',
      features: [
        { name: 'output', kind: 'categorical', values: ['p'] },
        { name: 'numeric', kind: 'raw', width: 1 },
        { name: 'x', kind: 'numeric', shift: 0, scale: 1, mean: 0 },
        { name: 'x!', kind: 'categorical', values: ['q'] },
      ],
      targets: [{ name: 'label', kind: 'numeric' }],
      inputWidth: 4,
    };
    const e = exportOnnx(modelToBlob(model), { preprocessing: prep });
    expect(e.inputs.map((i) => i.name)).toEqual(['numeric', 'output_1', 'numeric_1', 'x_']);
    expect(e.outputs.map((o) => o.name)).toEqual(['output']);
    model.dispose();
  });

  it('a single raw block (image pixels) keeps the model\'s own `input`', () => {
    const model = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [2, 2, 1] }), tf.layers.dense({ name: 'out', units: 3, activation: 'softmax' })] });
    const prep: Preprocessing = { normalization: 'none', features: [{ name: 'pixels', kind: 'raw', width: 4 }], targets: [{ name: 'label', kind: 'numeric' }], inputWidth: 4, imageShape: [2, 2, 1] };
    const e = exportOnnx(modelToBlob(model), { preprocessing: prep, task: setup('classification').task });
    expect(e.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 2, 2, 1] }]);
    expect(e.columns.inputs).toEqual([{ name: 'input', kind: 'raw', columns: ['pixels'] }]);
    model.dispose();
  });

  it('refuses preprocessing or a task that does not fit the model, naming the field', () => {
    const { model, prep, task } = setup('regression');
    const blob = modelToBlob(model);
    expect(() => exportOnnx(blob, { preprocessing: { ...prep, inputWidth: 12 } })).toThrow(/preprocessing.inputWidth is 12 but its features encode to 11/);
    expect(() => exportOnnx(blob, { preprocessing: { ...prep, features: prep.features.slice(1), inputWidth: 10 } })).toThrow(/encodes 10 values per example but the model's input has shape \[11\]/);
    expect(() => exportOnnx(blob, { preprocessing: prep, task: { ...task, outputs: 3 } })).toThrow(/task.outputs is 3 but the model's output layer has 2 units/);
    expect(() => exportOnnx(blob, { preprocessing: { ...prep, targets: [{ name: 'price', kind: 'numeric' }] }, task })).toThrow(/preprocessing.targets name 1 columns but the model's output has 2 values/);
    model.dispose();
  });
});
