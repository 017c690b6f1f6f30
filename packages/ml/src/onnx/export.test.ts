import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import type { ModelBlob } from '@fedge/proto';
import { initBackend } from '../backend.js';
import { createBuiltinModel, type BuiltinModel } from '../models.js';
import { loadMnist } from '../mnist.js';
import { subset } from '../dataset.js';
import { trainLocal } from '../train.js';
import { modelToBlob } from '../weights.js';
import { calibrateActivationRanges, exportOnnx, type OnnxExportOptions } from './index.js';
import { decodeModel } from './proto.js';

const { train, test } = loadMnist();
const SESSION: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: 1 };

beforeAll(async () => void (await initBackend('wasm')));

async function runOnnx(bytes: Uint8Array, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, SESSION);
  try {
    const out = await s.run({ input: new ort.Tensor('float32', x, shape) });
    return out['output']!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function predict(model: tf.LayersModel, x: Float32Array, shape: number[]): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor(x, shape)) as tf.Tensor).dataSync() as Float32Array);
}

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

function top1Agreement(a: Float32Array, b: Float32Array, classes: number): number {
  const argmax = (v: Float32Array, r: number) => {
    let best = 0;
    for (let k = 1; k < classes; k++) if (v[r * classes + k]! > v[r * classes + best]!) best = k;
    return best;
  };
  const rows = a.length / classes;
  let same = 0;
  for (let r = 0; r < rows; r++) if (argmax(a, r) === argmax(b, r)) same++;
  return same / rows;
}

describe.each(['mnist-mlp', 'mnist-cnn'] as BuiltinModel[])('%s to ONNX', (name) => {
  let model: tf.LayersModel;
  let blob: ModelBlob;
  let ref: Float32Array;
  let floatBytes: number;

  beforeAll(async () => {
    // Trained briefly so the weights (and int8 ranges) look like a real global model, not the initializer's.
    model = createBuiltinModel(name, 3);
    const n = name === 'mnist-cnn' ? 600 : 2000;
    await trainLocal(model, subset(train, Array.from({ length: n }, (_, i) => i)), { epochs: 1, batchSize: 20, learningRate: 0.05, seed: 1 });
    blob = modelToBlob(model);
    ref = predict(model, test.x, [test.n, 784]);
  }, 120_000);

  it('float32 outputs match tfjs within 1e-4 on every held-out digit', async () => {
    const e = exportOnnx(blob);
    floatBytes = e.bytes.length;
    expect(e.quantization).toBe('none');
    expect(e.input).toEqual({ name: 'input', datatype: 'FP32', shape: [-1, 784] });
    expect(e.output).toEqual({ name: 'output', datatype: 'FP32', shape: [-1, 10] });
    const y = await runOnnx(e.bytes, test.x, [test.n, 784]);
    expect(maxAbsDiff(y, ref)).toBeLessThanOrEqual(1e-4);
    // batch 1 too (the batch dimension is symbolic)
    const y1 = await runOnnx(e.bytes, test.x.subarray(0, 784), [1, 784]);
    expect(maxAbsDiff(y1, ref.subarray(0, 10))).toBeLessThanOrEqual(1e-4);
  });

  it.each([
    ['dynamic', {}],
    ['static', { activations: 'static' }],
  ] as [string, OnnxExportOptions][])('int8 (%s activations): >= 99%% top-1 agreement with float, <= 0.3x the size', async (_, extra) => {
    const opts: OnnxExportOptions = { quantize: 'int8', ...extra };
    if (extra.activations === 'static') opts.activationRanges = await calibrateActivationRanges(blob, train.x.subarray(0, 500 * 784), 500);
    const e = exportOnnx(blob, opts);
    expect(e.quantization).toBe(`int8-${extra.activations ?? 'dynamic'}`);
    expect(e.quantizedLayers.length).toBe(name === 'mnist-cnn' ? 4 : 3);
    const floatSize = floatBytes ?? exportOnnx(blob).bytes.length;
    expect(e.bytes.length / floatSize).toBeLessThanOrEqual(0.3);
    const y = await runOnnx(e.bytes, test.x, [test.n, 784]);
    expect(top1Agreement(y, ref, 10)).toBeGreaterThanOrEqual(0.99);
    const ops = new Set(decodeModel(e.bytes).graph.node.map((n) => n.opType));
    expect(ops.has(name === 'mnist-cnn' ? 'ConvInteger' : 'MatMulInteger')).toBe(true);
    expect(ops.has('DequantizeLinear')).toBe(false);
  });
});

describe('exportOnnx', () => {
  it('writes a valid ModelProto: opset, IR version, metadata, model version', () => {
    const blob = modelToBlob(createBuiltinModel('mnist-mlp', 1));
    const e = exportOnnx(blob, { modelVersion: 7, metadata: { 'fedge.run_id': 'run-1' } });
    const m = decodeModel(e.bytes);
    expect(m.irVersion).toBe(8);
    expect(m.opsetImport).toEqual([{ domain: '', version: 13 }]);
    expect(m.producerName).toBe('fedge');
    expect(m.modelVersion).toBe(7);
    expect(m.metadataProps).toContainEqual({ key: 'fedge.run_id', value: 'run-1' });
    expect(m.graph.node.map((n) => n.opType)).toEqual(['Gemm', 'Relu', 'Gemm', 'Relu', 'Gemm', 'Softmax', 'Identity']);
  });

  it('folds BatchNormalization, skips Dropout, exports pooling/activations of a functional model within 1e-4', async () => {
    const input = tf.input({ shape: [12, 12, 3], name: 'img' });
    let x = tf.layers.conv2d({ name: 'c1', filters: 8, kernelSize: 3, strides: 2, padding: 'same' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'bn1' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ name: 'a1', activation: 'tanh' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.averagePooling2d({ name: 'p1', poolSize: 2, strides: 1, padding: 'same' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ name: 'c2', filters: 4, kernelSize: 2, dilationRate: 2, activation: 'relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'bn2' }).apply(x) as tf.SymbolicTensor; // after an activation: not foldable
    x = tf.layers.maxPooling2d({ name: 'p2', poolSize: 2, padding: 'valid' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.flatten({ name: 'f' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dropout({ name: 'd', rate: 0.5 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ name: 'h', units: 6, activation: 'sigmoid' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: 'r', maxValue: 0.6 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ name: 'o', units: 3 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.softmax({ name: 's' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: x });
    // Non-trivial batch-norm statistics so folding is actually exercised.
    const rnd = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, (_, i) => lo + ((Math.sin(i * 12.9898) * 43758.5453) % 1 + 1) % 1 * (hi - lo));
    for (const name of ['bn1', 'bn2']) {
      const l = model.getLayer(name);
      const c = l.getWeights()[0]!.shape[0]!;
      l.setWeights([tf.tensor(rnd(c, 0.5, 2)), tf.tensor(rnd(c, -0.5, 0.5)), tf.tensor(rnd(c, -0.3, 0.3)), tf.tensor(rnd(c, 0.2, 3))]);
    }
    const n = 16;
    const xs = rnd(n * 12 * 12 * 3, 0, 1);
    const ref = predict(model, xs, [n, 12, 12, 3]);
    const e = exportOnnx(modelToBlob(model));
    expect(e.input.shape).toEqual([-1, 12, 12, 3]);
    const ops = decodeModel(e.bytes).graph.node.map((nd) => nd.opType);
    expect(ops.filter((o) => o === 'Mul')).toHaveLength(1); // bn1 folded into c1, bn2 kept as Mul + Add
    expect(ops).not.toContain('Dropout');
    expect(maxAbsDiff(await runOnnx(e.bytes, xs, [n, 12, 12, 3]), ref)).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });

  it('names the layer and its type when a layer cannot be exported', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.reshape({ name: 'img', inputShape: [16], targetShape: [4, 4, 1] }),
        tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3 }),
        tf.layers.flatten({ name: 'f' }),
      ],
    });
    expect(() => exportOnnx(modelToBlob(model))).toThrow(/layer "dw" \(DepthwiseConv2D\): layer type is not supported/);
    const elu = tf.sequential({ layers: [tf.layers.dense({ name: 'e', inputShape: [4], units: 2, activation: 'elu' })] });
    expect(() => exportOnnx(modelToBlob(elu))).toThrow(/layer "e" \(Dense\): activation "elu" is not supported/);
    model.dispose();
    elu.dispose();
  });

  it('rejects branching functional models and static quantization without ranges', () => {
    const a = tf.input({ shape: [4] });
    const b1 = tf.layers.dense({ name: 'b1', units: 2 }).apply(a) as tf.SymbolicTensor;
    const b2 = tf.layers.dense({ name: 'b2', units: 2 }).apply(a) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([b1, b2]) as tf.SymbolicTensor;
    const m = tf.model({ inputs: a, outputs: sum });
    expect(() => exportOnnx(modelToBlob(m))).toThrow(/layer "b2" \(Dense\): only linear chains/);
    const mlp = modelToBlob(createBuiltinModel('mnist-mlp', 1));
    expect(() => exportOnnx(mlp, { quantize: 'int8', activations: 'static' })).toThrow(/calibration/);
    m.dispose();
  });
});
