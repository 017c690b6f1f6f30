import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist } from '@fedge/ml';
import type { ModelSlot } from './model-slot.js';
import { InferenceServer } from './server.js';
import { GrpcInferenceServer } from './grpc-server.js';
import { mnistSlot, predictClient, type PredictClient } from './serving.fixture.js';

const { test } = loadMnist();
let slot: ModelSlot;
let http: InferenceServer;
let grpcServer: GrpcInferenceServer;
let base = '';
let client: PredictClient;

const body = (id?: string) => ({ ...(id ? { id } : {}), inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(test.x.subarray(0, 784)) }] });
async function infer(requestId: string | undefined, opts: { header?: boolean; path?: string } = {}): Promise<{ status: number; header: string | null; version: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (requestId && opts.header !== false) headers['x-request-id'] = requestId;
  const res = await fetch(`${base}${opts.path ?? '/v2/models/mnist/infer'}`, { method: 'POST', headers, body: JSON.stringify(body(opts.header === false ? requestId : undefined)) });
  const json = (await res.json()) as Record<string, unknown>;
  return { status: res.status, header: res.headers.get('x-model-version'), version: json.model_version };
}

beforeAll(async () => {
  slot = await mnistSlot('mnist', { '1': 1, '2': 2 });
  http = new InferenceServer(slot, { maxBatch: 64 });
  base = `http://127.0.0.1:${(await http.listen('127.0.0.1', 0)).port}`;
  grpcServer = new GrpcInferenceServer(slot, { maxBodyBytes: 64 * 1024, maxBatch: 64 });
  const port = await grpcServer.listen('127.0.0.1', 0);
  client = predictClient(port);
}, 60_000);

afterAll(async () => {
  client?.close();
  await http?.close();
  await grpcServer?.close();
  await slot?.close();
});

describe('A/B routing over real HTTP and gRPC', () => {
  it('without a split the current version answers, named in the body and the x-model-version header', async () => {
    const r = await infer('a');
    expect(r).toEqual({ status: 200, header: '2', version: '2' });
  });

  it('splits by x-request-id (sticky), records per-version stats, and a named version bypasses the split', async () => {
    slot.setSplit({ stable: '1', candidate: '2', fraction: 0.3, source: 'canary' });
    const seen = new Map<string, unknown>();
    let candidate = 0;
    const n = 120;
    for (let i = 0; i < n; i++) {
      const r = await infer(`user-${i}`);
      expect(r.header).toBe(r.version);
      seen.set(`user-${i}`, r.version);
      if (r.version === '2') candidate++;
    }
    // 120 draws at p = 0.3: sd 0.042; 3.5 sd of tolerance.
    expect(Math.abs(candidate / n - 0.3)).toBeLessThan(0.15);
    for (let i = 0; i < 20; i++) expect((await infer(`user-${i}`)).version).toBe(seen.get(`user-${i}`));
    // The KServe body id works as the sticky key when there is no header.
    for (let i = 0; i < 20; i++) expect((await infer(`user-${i}`, { header: false })).version).toBe(seen.get(`user-${i}`));
    expect((await infer('user-0', { path: '/v2/models/mnist/versions/1/infer' })).version).toBe('1');
    const w = slot.stats.windowView();
    expect(w['1']!.requests + w['2']!.requests).toBe(n + 41);
    expect(w['2']!.p99Ms).toBeGreaterThan(0);
    expect(w['2']!.classes!.reduce((a, b) => a + b, 0)).toBe(w['2']!.requests);
  });

  it('routes gRPC ModelInfer by the request id the same way', async () => {
    const raw = Buffer.from(new Float32Array(test.x.subarray(0, 784)).buffer);
    for (let i = 0; i < 10; i++) {
      const http = await infer(`user-${i}`);
      const res = await new Promise<Record<string, unknown>>((resolve, reject) =>
        client.ModelInfer!({ model_name: 'mnist', id: `user-${i}`, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784] }], raw_input_contents: [raw] }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      expect(res.model_version).toBe(http.version);
    }
  });

  it('the flag split (abFraction) sends a fraction to the newest loaded version once a canary split is cleared', async () => {
    slot.setSplit(undefined);
    slot.abFraction = 1;
    expect((await infer('z')).version).toBe('2');
    slot.abFraction = 0;
    expect((await infer('z')).version).toBe('1');
    slot.abFraction = undefined;
    expect((await infer('z')).version).toBe('2');
  });
});
