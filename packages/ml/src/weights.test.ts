import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ValidationError } from '@fedge/proto';
import { initBackend } from './backend.js';
import { BUILTIN_MODELS, createBuiltinModel } from './models.js';
import { getWeights, modelFromBlob, modelToBlob, setWeights } from './weights.js';
import { loadModelDir, saveModelDir } from './model-dir.js';

let dir: string;
// Byte comparison: vitest's deep equality walks 1.6M floats one by one (seconds per assertion).
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const expectSameFloats = (a: Float32Array, b: Float32Array) => expect(bytes(a).equals(bytes(b))).toBe(true);
beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'fedge-ml-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('built-in models', () => {
  it('have the published parameter counts and fixed tensor names', () => {
    const counts = { 'mnist-mlp': 199_210, 'mnist-cnn': 1_663_370 };
    for (const name of BUILTIN_MODELS) {
      const m = createBuiltinModel(name, 1);
      expect(m.countParams()).toBe(counts[name]);
      expect(getWeights(m).tensors[0]!.name).toBe(name === 'mnist-mlp' ? 'fc1/kernel' : 'conv1/kernel');
      m.dispose();
    }
  });

  it('seeded initial weights are deterministic (and names stable when built twice)', () => {
    const [a, b, c] = [1, 1, 2].map((s) => createBuiltinModel('mnist-mlp', s));
    const [wa, wb, wc] = [a!, b!, c!].map(getWeights);
    expect(wb!.tensors).toEqual(wa!.tensors);
    expectSameFloats(wb!.weights, wa!.weights);
    expect(wc!.weights).not.toEqual(wa!.weights);
    [a, b, c].forEach((m) => m!.dispose());
  });
});

describe('model blobs', () => {
  it('modelToBlob / modelFromBlob round-trip exactly, predictions included', async () => {
    const m = createBuiltinModel('mnist-cnn', 4);
    const blob = modelToBlob(m);
    const back = await modelFromBlob(blob);
    const again = modelToBlob(back);
    expect(again.tensors).toEqual(blob.tensors);
    expectSameFloats(again.weights, blob.weights);
    const x = tf.ones([1, 784]);
    const [p, q] = [m, back].map((mm) => (mm.predict(x) as tf.Tensor).dataSync());
    expect(Array.from(q!)).toEqual(Array.from(p!));
    tf.dispose(x);
    m.dispose();
    back.dispose();
  });

  it('modelFromBlob names the offending tensor on a spec mismatch', async () => {
    const blob = modelToBlob(createBuiltinModel('mnist-mlp'));
    const tensors = blob.tensors.map((t) => ({ ...t, shape: [...t.shape] }));
    tensors[2]!.shape = [400, 100]; // same parameter count, so only the specs disagree
    const err = await modelFromBlob({ ...blob, tensors }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe('E_VALIDATION');
    expect((err as Error).message).toMatch(/fc2\/kernel/);
    await expect(modelFromBlob({ ...blob, weights: blob.weights.subarray(1) })).rejects.toThrow(/199209/);
  });

  it('setWeights checks the length and copies the values', () => {
    const m = createBuiltinModel('mnist-mlp');
    const w = new Float32Array(199_210).map((_, i) => i * 1e-6);
    setWeights(m, w);
    w.fill(0);
    expect(getWeights(m).weights[5]).toBeCloseTo(5e-6);
    expect(() => setWeights(m, new Float32Array(3))).toThrow(ValidationError);
    m.dispose();
  });
});

describe('model directories', () => {
  it('saveModelDir / loadModelDir round-trip, by dir and by model.json path', async () => {
    const blob = modelToBlob(createBuiltinModel('mnist-cnn', 9));
    const path = await saveModelDir(blob, join(dir, 'cnn'));
    expect(path.endsWith('model.json')).toBe(true);
    for (const p of [path, join(dir, 'cnn')]) {
      const got = await loadModelDir(p);
      expect(got.tensors).toEqual(blob.tensors);
      expectSameFloats(got.weights, blob.weights);
      expect(got.topology).toEqual(blob.topology);
    }
  });

  it('writes the tfjs layers-model format that tf.loadLayersModel accepts', async () => {
    const m = createBuiltinModel('mnist-mlp', 5);
    const path = await saveModelDir(modelToBlob(m), join(dir, 'mlp'));
    const modelJson = JSON.parse(await readFile(path, 'utf8')) as tf.io.ModelJSON;
    const handler: tf.io.IOHandler = {
      load: () =>
        tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
          const buf = await readFile(join(dir, 'mlp', manifest[0]!.paths[0]!));
          return [manifest[0]!.weights, buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)];
        }),
    };
    const loaded = await tf.loadLayersModel(handler);
    expectSameFloats(getWeights(loaded).weights, getWeights(m).weights);
    m.dispose();
    loaded.dispose();
  });

  it('detects weights that do not belong to model.json', async () => {
    const blob = modelToBlob(createBuiltinModel('mnist-mlp', 1));
    await saveModelDir(blob, join(dir, 'torn'));
    await writeFile(join(dir, 'torn', 'weights.bin'), new Uint8Array(blob.weights.length * 4));
    await expect(loadModelDir(join(dir, 'torn'))).rejects.toThrow(/checksum/);
    await writeFile(join(dir, 'torn', 'weights.bin'), new Uint8Array(8));
    await expect(loadModelDir(join(dir, 'torn'))).rejects.toThrow(ValidationError);
  });
});
