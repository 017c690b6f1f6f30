/** Serving a model exported with preprocessing: raw columns over KServe v2 (FP32 with nulls, BYTES), named outputs. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { decodeOnnxModel, exportOnnx, initBackend, modelToBlob, tf } from '@fedge/ml';
import type { ModelBlob, Preprocessing, ResolvedTask } from '@fedge/proto';
import { GlobalModelServer } from './global-server.js';
import { ModelSlot, sessionOptions } from './model-slot.js';
import { readOnnxMetadata } from './onnx-meta.js';
import { InferenceServer } from './server.js';

const prep = (targets: Preprocessing['targets']): Preprocessing => ({
  normalization: 'zscore',
  features: [
    { name: 'sqft', kind: 'numeric', shift: 1500, scale: 500, mean: 1600 },
    { name: 'zone', kind: 'categorical', values: ['R1', 'R2', 'C'] },
    { name: 'year built', kind: 'numeric', shift: 1980, scale: 20, mean: 1985 },
  ],
  targets,
  inputWidth: 5,
});
const task = (type: ResolvedTask['type'], outputs: number): ResolvedTask => ({
  type, loss: type === 'regression' ? 'mse' : 'sparse-categorical-crossentropy', huberDelta: 1, optimizer: { name: 'adam', learningRate: 0.01 }, metrics: [], outputs,
});
const CLS = { preprocessing: prep([{ name: 'grade', kind: 'categorical', values: ['low', 'mid', 'high'] }]), task: task('classification', 3) };
const REG = { preprocessing: prep([{ name: 'price', kind: 'numeric' }]), task: task('regression', 1) };

function mlp(units: number, activation: 'softmax' | 'linear', seed: number): ModelBlob {
  const m = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [5], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ name: 'out', units, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
  const blob = modelToBlob(m);
  m.dispose();
  return blob;
}

let slot: ModelSlot;
let server: InferenceServer;
let base = '';
let cls: Uint8Array;

async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}
const rows = {
  numeric: { name: 'numeric', shape: [3, 2], datatype: 'FP32', data: [[1200, 1990], [null, 2001], [2500, null]] },
  zone: { name: 'zone', shape: [3, 1], datatype: 'BYTES', data: ['R2', 'C', 'unknown'] },
};

beforeAll(async () => {
  await initBackend('wasm');
  cls = exportOnnx(mlp(3, 'softmax', 1), CLS).bytes;
  slot = new ModelSlot('houses');
  server = new InferenceServer(slot, { maxBatch: 16 });
  base = `http://127.0.0.1:${(await server.listen('127.0.0.1', 0)).port}`;
  await slot.load(cls, '1');
}, 60_000);

afterAll(async () => {
  await server?.close();
  await slot?.close();
});

describe('serving a model with preprocessing', () => {
  it('reads the export\'s metadata without decoding the graph', () => {
    const all = Object.fromEntries(decodeOnnxModel(cls).metadataProps.map((p) => [p.key, p.value]));
    expect(readOnnxMetadata(cls)).toEqual(all);
    expect(readOnnxMetadata(Uint8Array.of(0x0a, 0xff))).toBeUndefined();
  });

  it('lists the raw inputs with datatype, shape and columns, and the task', async () => {
    const { status, json } = await call('GET', '/v2/models/houses');
    expect(status).toBe(200);
    expect(json['inputs']).toEqual([
      { name: 'numeric', datatype: 'FP32', shape: [-1, 2], parameters: { kind: 'numeric', columns: ['sqft', 'year built'], missing: 'null' } },
      { name: 'zone', datatype: 'BYTES', shape: [-1, 1], parameters: { kind: 'categorical', columns: ['zone'], values: ['R1', 'R2', 'C'], missing: expect.stringContaining('null') } },
    ]);
    expect(json['outputs']).toEqual([{ name: 'output', datatype: 'FP32', shape: [-1, 3], parameters: { kind: 'probabilities', columns: ['low', 'mid', 'high'] } }]);
    expect(json['parameters']).toMatchObject({ task: 'classification' });
  });

  it('infers from raw values: null numbers, BYTES categories (unknown too), a flat [N] column', async () => {
    const r = await call('POST', '/v2/models/houses/infer', { inputs: [rows.numeric, rows.zone] });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const out = (r.json['outputs'] as { name: string; shape: number[]; data: number[] }[])[0]!;
    expect(out).toMatchObject({ name: 'output', shape: [3, 3] });
    const s = await ort.InferenceSession.create(cls, sessionOptions());
    const ref = (await s.run({
      numeric: new ort.Tensor('float32', Float32Array.of(1200, 1990, NaN, 2001, 2500, NaN), [3, 2]),
      zone: new ort.Tensor('string', ['R2', 'C', 'unknown'], [3, 1]),
    }))['output']!.data as Float32Array;
    await s.release();
    out.data.forEach((v, i) => expect(Math.abs(v - ref[i]!)).toBeLessThan(1e-6));
    const flat = await call('POST', '/v2/models/houses/infer', { inputs: [rows.numeric, { ...rows.zone, shape: [3] }] });
    expect((flat.json['outputs'] as { data: number[] }[])[0]!.data).toEqual(out.data);
  });

  it('takes BYTES and FP32 inputs in the binary tensor data extension (length-prefixed strings, NaN for missing)', async () => {
    const json = await call('POST', '/v2/models/houses/infer', { inputs: [rows.numeric, rows.zone] });
    const num = Float32Array.of(1200, 1990, NaN, 2001, 2500, NaN);
    const zone = Buffer.concat(['R2', 'C', 'unknown'].flatMap((z) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(Buffer.byteLength(z));
      return [len, Buffer.from(z)];
    }));
    const header = Buffer.from(JSON.stringify({ inputs: [
      { name: 'numeric', shape: [3, 2], datatype: 'FP32', parameters: { binary_data_size: num.byteLength } },
      { name: 'zone', shape: [3, 1], datatype: 'BYTES', parameters: { binary_data_size: zone.length } },
    ] }));
    const post = (tail: Buffer) => fetch(`${base}/v2/models/houses/infer`, { method: 'POST', headers: { 'Inference-Header-Content-Length': String(header.length) }, body: Buffer.concat([header, tail]) });
    const r = await post(Buffer.concat([Buffer.from(num.buffer), zone]));
    expect(r.status).toBe(200);
    expect(((await r.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual((json.json['outputs'] as { data: number[] }[])[0]!.data);
    // A string whose length prefix runs past the data.
    const bad = Buffer.from(zone);
    bad.writeUInt32LE(99, 0);
    const b = await post(Buffer.concat([Buffer.from(num.buffer), bad]));
    expect(b.status).toBe(400);
    expect(((await b.json()) as { error: string }).error).toMatch(/input "zone" .*BYTES element 0 declares 99 bytes/);
  });

  it('answers bad raw inputs with a 400 naming the input and the fix', async () => {
    const cases: [string, unknown[], RegExp][] = [
      ['categorical as FP32', [rows.numeric, { ...rows.zone, datatype: 'FP32', data: [1, 2, 3] }], /input "zone": datatype FP32 is not supported; expected BYTES \(send the column's values as JSON strings\)/],
      ['numbers in BYTES', [rows.numeric, { ...rows.zone, data: [1, 2, 3] }], /input "zone" \(inputs\.1\.data\): BYTES data must be strings/],
      ['strings in numeric', [{ ...rows.numeric, data: ['a', 1, 2, 3, 4, 5] }, rows.zone], /input "numeric" \(inputs\.0\.data\): FP32 data must be numbers/],
      ['numeric too narrow', [{ ...rows.numeric, shape: [3, 1], data: [1, 2, 3] }, rows.zone], /input "numeric": shape \[3,1\].*one row of 2 values per example: sqft, year built/],
      ['batch mismatch', [rows.numeric, { ...rows.zone, shape: [2, 1], data: ['R1', 'C'] }], /input "zone": batch size 2 differs from input "numeric" \(3\)/],
      ['missing categorical', [rows.numeric], /missing input "zone" \(model inputs: numeric, zone; GET \/v2\/models\/houses lists each input's columns\)/],
      ['encoded input', [{ name: 'input', shape: [1, 5], datatype: 'FP32', data: [0, 0, 0, 0, 0] }], /missing input "numeric"/],
    ];
    for (const [what, inputs, message] of cases) {
      const r = await call('POST', '/v2/models/houses/infer', { inputs });
      expect(r.status, what).toBe(400);
      expect(String(r.json['error']), what).toMatch(message);
    }
    expect(server.failures).toBe(0);
  });

  it('the global model server exports with the run\'s preprocessing, remembered for later offers of the run', async () => {
    const gs = new GlobalModelServer(new ModelSlot('g'), { quantize: 'int8', activations: 'dynamic' });
    const blob = mlp(1, 'linear', 5);
    await gs.offer({ runId: 'r', version: 1, sha256: 'a' }, async () => blob, false, REG);
    const m1 = gs.slot.current!;
    expect(m1.inputs.map((i) => [i.name, i.datatype])).toEqual([['numeric', 'FP32'], ['zone', 'BYTES']]);
    expect(m1.outputs).toEqual([{ name: 'price', datatype: 'FP32', shape: [-1, 1], parameters: { kind: 'value', columns: ['price'] } }]);
    expect(m1.info).toMatchObject({ task: 'regression', quantization: 'int8-dynamic', global_version: 1 });
    // An announce/promote offer brings no payload: the run's preprocessing still applies.
    await gs.offer({ runId: 'r', version: 2, sha256: 'b' }, async () => blob);
    expect(gs.slot.current!.version).toBe('2');
    expect(gs.slot.current!.outputs[0]!.name).toBe('price');
    // Another run without a payload is served on its encoded input, as before.
    await gs.offer({ runId: 'other', version: 1, sha256: 'c' }, async () => blob);
    expect(gs.slot.current!.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 5] }]);
    expect(gs.slot.current!.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: [-1, 1] }]);
    // Preprocessing that does not fit the model fails that version; what is loaded keeps serving.
    await gs.offer({ runId: 'other', version: 2, sha256: 'd' }, async () => blob, false, CLS);
    expect(gs.loaded).toMatchObject({ runId: 'other', version: 1 });
    await gs.slot.close();
  });
});
