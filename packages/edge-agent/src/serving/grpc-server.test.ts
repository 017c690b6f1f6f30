import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { loadMnist } from '@fedge/ml';
import type { ModelSlot } from './model-slot.js';
import { GrpcInferenceServer } from './grpc-server.js';
import { mnistSlot, predictClient, type PredictClient } from './serving.fixture.js';

const { test } = loadMnist();
let slot: ModelSlot;
let server: GrpcInferenceServer;
let client: PredictClient;

const call = (method: string, req: unknown) =>
  new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => client[method]!(req, (err, res) => resolve({ err, res })));
const rows = (n: number) => new Float32Array(test.x.subarray(0, n * 784));
const raw = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

beforeAll(async () => {
  slot = await mnistSlot('mnist', { '1': 2 });
  server = new GrpcInferenceServer(slot, { maxBodyBytes: 64 * 1024, maxBatch: 64 });
  const port = await server.listen('127.0.0.1', 0);
  client = predictClient(port);
}, 60_000);

afterAll(async () => {
  client?.close();
  await server?.close();
  await slot?.close();
});

describe('GrpcInferenceServer (inference.GRPCInferenceService over real gRPC)', () => {
  it('answers raw_input_contents and typed contents alike', async () => {
    const x = rows(3);
    const a = await call('ModelInfer', { model_name: 'mnist', inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 784] }], raw_input_contents: [raw(x)] });
    expect(a.err).toBeNull();
    expect(a.res['outputs']).toEqual([expect.objectContaining({ name: 'output', datatype: 'FP32', shape: [3, 10] })]);
    const out = (a.res['raw_output_contents'] as Buffer[])[0]!;
    expect(out.length).toBe(3 * 10 * 4);
    const b = await call('ModelInfer', { model_name: 'mnist', inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 784], contents: { fp32_contents: Array.from(x) } }] });
    expect(b.err).toBeNull();
    expect((b.res['raw_output_contents'] as Buffer[])[0]!.equals(out)).toBe(true);
  });

  it('refuses malformed and oversized requests with INVALID_ARGUMENT, unknown models with NOT_FOUND', async () => {
    const x = rows(2);
    const inp = { name: 'input', datatype: 'FP32', shape: [2, 784] };
    const cases: [string, unknown, grpc.status, RegExp][] = [
      ['raw count', { model_name: 'mnist', inputs: [inp], raw_input_contents: [raw(x), raw(x)] }, grpc.status.INVALID_ARGUMENT, /raw_input_contents has 2 entries for 1 inputs/],
      ['raw size', { model_name: 'mnist', inputs: [inp], raw_input_contents: [raw(x).subarray(4)] }, grpc.status.INVALID_ARGUMENT, /raw_input_contents\[0\]\): 6268 bytes for 1568 FP32 values/],
      ['no data', { model_name: 'mnist', inputs: [inp] }, grpc.status.INVALID_ARGUMENT, /input "input" \(inputs\[0\]\): no data/],
      ['no inputs', { model_name: 'mnist', inputs: [] }, grpc.status.INVALID_ARGUMENT, /invalid ModelInferRequest: inputs/],
      ['oversized', { model_name: 'mnist', inputs: [{ ...inp, shape: [24, 784] }], raw_input_contents: [raw(rows(24))] }, grpc.status.INVALID_ARGUMENT, /tensors of 75264 bytes exceed the limit of 65536 bytes/],
      ['dtype', { model_name: 'mnist', inputs: [{ ...inp, datatype: 'INT32' }], raw_input_contents: [raw(x)] }, grpc.status.INVALID_ARGUMENT, /INT32 is not supported in binary form/],
      ['unknown model', { model_name: 'nope', inputs: [inp], raw_input_contents: [raw(x)] }, grpc.status.NOT_FOUND, /unknown model "nope"/],
      ['unknown version', { model_name: 'mnist', model_version: '9', inputs: [inp], raw_input_contents: [raw(x)] }, grpc.status.NOT_FOUND, /no loaded version "9"/],
    ];
    for (const [what, req, code, message] of cases) {
      const { err } = await call('ModelInfer', req);
      expect(err?.code, what).toBe(code);
      expect(err?.details, what).toMatch(message);
    }
    expect((await call('ModelMetadata', { name: 'mnist' })).res).toMatchObject({ name: 'mnist', versions: ['1'], inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 784] }] });
    expect((await call('ServerMetadata', {})).res['extensions']).toContain('binary_tensor_data');
    expect((await call('ModelReady', { name: 'mnist', version: '2' })).res).toEqual({ ready: false });
  });
});
