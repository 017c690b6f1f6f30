import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createBuiltinModel, exportOnnx, initBackend, loadMnist, modelToBlob, type tf } from '@fedge/ml';
import { ModelSlot, sessionOptions } from './model-slot.js';
import { InferenceServer } from './server.js';

const { test } = loadMnist();
let models: Uint8Array[] = [];
let slot: ModelSlot;
let server: InferenceServer;
let base = '';

async function post(path: string, body: unknown, raw = false): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}
async function get(path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}
const digits = (from: number, n: number) => Array.from(test.x.subarray(from * 784, (from + n) * 784));
const inferBody = (n: number, from = 0) => ({ id: 'r1', inputs: [{ name: 'input', shape: [n, 784], datatype: 'FP32', data: digits(from, n) }] });

beforeAll(async () => {
  await initBackend('wasm');
  // Distinct versions: same architecture, different seeds; v1 float, the rest int8 like the agent serves.
  models = [1, 2, 3, 4, 5, 6].map((seed) => {
    const m: tf.LayersModel = createBuiltinModel('mnist-mlp', seed);
    const bytes = exportOnnx(modelToBlob(m), { quantize: seed === 1 ? 'none' : 'int8' }).bytes;
    m.dispose();
    return bytes;
  });
  slot = new ModelSlot('mnist');
  server = new InferenceServer(slot, { maxBodyBytes: 200 * 1024, maxBatch: 64 });
  const addr = await server.listen('127.0.0.1', 0);
  base = `http://127.0.0.1:${addr.port}`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  await slot?.close();
});

describe('InferenceServer (KServe v2 over real HTTP)', () => {
  it('is live before a model is loaded, ready after', async () => {
    expect(await get('/v2/health/live')).toEqual({ status: 200, json: { live: true } });
    expect((await get('/v2/health/ready')).status).toBe(503);
    // The Kubernetes-style aliases answer the same, with the reason for not being ready.
    expect(await get('/healthz')).toEqual({ status: 200, json: { live: true } });
    expect(await get('/readyz')).toEqual({ status: 503, json: { ready: false, reason: 'no model version loaded yet' } });
    expect((await get('/v2/models/mnist')).status).toBe(404);
    await slot.load(models[0]!, '1', { quantization: 'none' });
    expect(await get('/v2/health/ready')).toEqual({ status: 200, json: { ready: true } });
    expect(await get('/readyz')).toEqual({ status: 200, json: { ready: true } });
    expect(await get('/v2/models/mnist/ready')).toEqual({ status: 200, json: { name: 'mnist', ready: true } });
  });

  it('serves metadata: inputs, outputs, version', async () => {
    const { status, json } = await get('/v2/models/mnist');
    expect(status).toBe(200);
    expect(json).toMatchObject({
      name: 'mnist',
      version: '1',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 784] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 10] }],
    });
  });

  it('infers batches, flat or nested data, with the same numbers as a direct session', async () => {
    const { status, json } = await post('/v2/models/mnist/infer', inferBody(5));
    expect(status).toBe(200);
    expect(json).toMatchObject({ model_name: 'mnist', model_version: '1', id: 'r1' });
    const out = (json['outputs'] as { name: string; shape: number[]; datatype: string; data: number[] }[])[0]!;
    expect(out).toMatchObject({ name: 'output', shape: [5, 10], datatype: 'FP32' });
    const s = await ort.InferenceSession.create(models[0]!, sessionOptions());
    const ref = (await s.run({ input: new ort.Tensor('float32', Float32Array.from(digits(0, 5)), [5, 784]) }))['output']!.data as Float32Array;
    await s.release();
    out.data.forEach((v, i) => expect(Math.abs(v - ref[i]!)).toBeLessThan(1e-6));
    const nested = [digits(0, 1), digits(1, 1)];
    const r2 = await post('/v2/models/mnist/versions/1/infer', { inputs: [{ name: 'input', shape: [2, 784], datatype: 'FP32', data: nested }], outputs: [{ name: 'output' }] });
    expect(r2.status).toBe(200);
    expect((r2.json['outputs'] as { data: number[] }[])[0]!.data.slice(0, 10)).toEqual(out.data.slice(0, 10));
    // An empty outputs list asks for every output, like no list (it was a 500: 'fetches' cannot be an empty array).
    const r3 = await post('/v2/models/mnist/infer', { ...inferBody(5), outputs: [] });
    expect(r3.status, JSON.stringify(r3.json)).toBe(200);
    expect(r3.json['outputs']).toEqual(json['outputs']);
  });

  it('answers every bad request with a 4xx and a message, and keeps serving', async () => {
    const one = digits(0, 1);
    const cases: [string, () => Promise<{ status: number; json: Record<string, unknown> }>, number, RegExp][] = [
      ['unknown model', () => post('/v2/models/nope/infer', inferBody(1)), 404, /unknown model "nope"/],
      ['unknown version', () => post('/v2/models/mnist/versions/9/infer', inferBody(1)), 404, /no loaded version "9"/],
      ['unknown endpoint', () => get('/v1/models'), 404, /no such endpoint/],
      ['GET on infer', () => get('/v2/models/mnist/infer'), 405, /use POST/],
      ['not JSON', () => post('/v2/models/mnist/infer', '{"inputs": [', true), 400, /not valid JSON/],
      ['missing inputs', () => post('/v2/models/mnist/infer', { id: 'x' }), 400, /inputs/],
      ['empty inputs', () => post('/v2/models/mnist/infer', { inputs: [] }), 400, /inputs/],
      ['missing data field', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32' }] }), 400, /inputs\.0\.data/],
      ['non-numeric data', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: ['a', 'b'] }] }), 400, /inputs\.0\.data/],
      ['wrong input name', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'x', shape: [1, 784], datatype: 'FP32', data: one }] }), 400, /missing input "input"/],
      ['wrong dtype', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [1, 784], datatype: 'INT32', data: one }] }), 400, /datatype INT32/],
      ['wrong shape', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [1, 785], datatype: 'FP32', data: [...one, 0] }] }), 400, /shape \[1,785\]/],
      ['wrong rank', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [784], datatype: 'FP32', data: one }] }), 400, /shape \[784\]/],
      ['data/shape mismatch', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [2, 784], datatype: 'FP32', data: one }] }), 400, /784 values for shape \[2,784\]/],
      ['batch 0', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [0, 784], datatype: 'FP32', data: [] }] }), 400, /batch size 0/],
      ['batch too big', () => post('/v2/models/mnist/infer', { inputs: [{ name: 'input', shape: [65, 784], datatype: 'FP32', data: [] }] }), 400, /batch size 65/],
      ['unknown output', () => post('/v2/models/mnist/infer', { ...inferBody(1), outputs: [{ name: 'logits' }] }), 400, /unknown output "logits"/],
      ['oversized body', () => post('/v2/models/mnist/infer', inferBody(64)), 413, /exceeds the limit/],
    ];
    for (const [what, call, status, message] of cases) {
      const r = await call();
      expect(r.status, what).toBe(status);
      expect(String(r.json['error']), what).toMatch(message);
      expect((await post('/v2/models/mnist/infer', inferBody(1))).status, `still serving after ${what}`).toBe(200);
    }
    // An oversized body without Content-Length (chunked) is cut off as well.
    const chunked = await fetch(`${base}/v2/models/mnist/infer`, {
      method: 'POST',
      body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(JSON.stringify(inferBody(64)))); c.close(); } }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(server.failures).toBe(0);
  });

  it('takes and returns tensors in the binary tensor data extension, and refuses malformed binary requests', async () => {
    const x = new Float32Array(test.x.subarray(0, 2 * 784));
    const raw = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    const binPost = (header: Record<string, unknown>, tail: Buffer, headerLength?: string) => {
      const json = Buffer.from(JSON.stringify(header));
      return fetch(`${base}/v2/models/mnist/infer`, { method: 'POST', headers: { 'inference-header-content-length': headerLength ?? String(json.length) }, body: Buffer.concat([json, tail]) });
    };
    const input = { name: 'input', shape: [2, 784], datatype: 'FP32', parameters: { binary_data_size: raw.length } };
    const ref = (await post('/v2/models/mnist/infer', inferBody(2))).json['outputs'] as { data: number[] }[];
    const r = await binPost({ inputs: [input], parameters: { binary_data_output: true } }, raw);
    expect(r.status).toBe(200);
    const body = Buffer.from(await r.arrayBuffer());
    const jsonLen = Number(r.headers.get('inference-header-content-length'));
    const head = JSON.parse(body.subarray(0, jsonLen).toString()) as { outputs: { name: string; parameters: { binary_data_size: number }; data?: unknown }[] };
    expect(head.outputs[0]).toMatchObject({ name: 'output', parameters: { binary_data_size: 2 * 10 * 4 } });
    expect(head.outputs[0]!.data).toBeUndefined();
    const out = new Float32Array(new Uint8Array(body.subarray(jsonLen)).buffer);
    expect(Array.from(out)).toEqual(ref[0]!.data);
    // Binary input, JSON output (binary_data false on the output overrides binary_data_output).
    const mixed = await binPost({ inputs: [input], outputs: [{ name: 'output', parameters: { binary_data: false } }], parameters: { binary_data_output: true } }, raw);
    expect(((await mixed.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual(ref[0]!.data);

    const cases: [string, () => Promise<Response>, RegExp][] = [
      ['short binary', () => binPost({ inputs: [input] }, raw.subarray(8)), /only 6264 bytes of binary data remain/],
      ['trailing bytes', () => binPost({ inputs: [input] }, Buffer.concat([raw, Buffer.alloc(4)])), /4 bytes of binary data after the JSON header belong to no input/],
      ['size not shape', () => binPost({ inputs: [{ ...input, parameters: { binary_data_size: raw.length - 4 } }] }, raw.subarray(4)), /6268 bytes for 1568 FP32 values \(needs 6272/],
      ['header length beyond body', () => binPost({ inputs: [input] }, raw, '99999999'), /Inference-Header-Content-Length: "99999999" is not a byte count/],
      ['no header', () => fetch(`${base}/v2/models/mnist/infer`, { method: 'POST', body: Buffer.concat([Buffer.from(JSON.stringify({ inputs: [input] })), raw]) }), /not valid JSON.*Inference-Header-Content-Length/],
      ['data and binary', () => binPost({ inputs: [{ ...input, data: [1] }] }, raw), /has both data and binary_data_size/],
    ];
    for (const [what, call, message] of cases) {
      const res = await call();
      expect(res.status, what).toBe(400);
      expect(((await res.json()) as { error: string }).error, what).toMatch(message);
    }
    const cfg = await get('/v2/models/mnist/config');
    expect(cfg).toMatchObject({ status: 200, json: { name: 'mnist', platform: 'onnxruntime_onnx', input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [-1, 784] }] } });
    expect((await get('/v2')).json['extensions']).toContain('binary_tensor_data');
  });

  it('hot-swaps versions under continuous requests without failing one, then rolls back', async () => {
    let stop = false;
    const seen = new Map<string, number>();
    const errors: string[] = [];
    const client = async (batch: number, from: number) => {
      while (!stop) {
        try {
          const r = await post('/v2/models/mnist/infer', inferBody(batch, from));
          if (r.status !== 200) errors.push(`${r.status} ${JSON.stringify(r.json)}`);
          else seen.set(String(r.json['model_version']), (seen.get(String(r.json['model_version'])) ?? 0) + 1);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    const clients = [client(1, 0), client(8, 10), client(32, 50), client(1, 3)];
    for (let v = 2; v <= 6; v++) {
      await new Promise((r) => setTimeout(r, 150));
      await slot.load(models[v - 1]!, String(v));
    }
    await new Promise((r) => setTimeout(r, 150));
    stop = true;
    await Promise.all(clients);
    expect(errors).toEqual([]);
    expect(slot.swaps).toBeGreaterThanOrEqual(6);
    expect([...seen.keys()].length).toBeGreaterThanOrEqual(3);
    expect(seen.get('6')).toBeGreaterThan(0);
    expect(slot.current?.version).toBe('6');
    expect(slot.previous?.version).toBe('5');
    expect(slot.current?.inflight).toBe(0);
    // The previous version stays loaded: addressable by version, and a rollback makes it current.
    expect((await post('/v2/models/mnist/versions/5/infer', inferBody(1))).status).toBe(200);
    expect(await post('/v2/models/mnist/rollback', {})).toEqual({ status: 200, json: { name: 'mnist', version: '5' } });
    expect((await post('/v2/models/mnist/infer', inferBody(1))).json['model_version']).toBe('5');
    expect((await get('/v2/models/mnist')).json['versions']).toEqual(['5', '6']);
  }, 30_000);
});
