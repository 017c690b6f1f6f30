/**
 * End to end with NVIDIA's stock tritonclient (scripts/install-tritonclient.sh, ~/.cache/fedge/venv-triton): a
 * `fedge-agent serve` process with --grpc-port answers test/kserve/triton_client.py over HTTP (the binary tensor data
 * extension, tritonclient's default, and JSON) and gRPC, and every path returns what fedge's own JSON path returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createBuiltinModel, exportOnnx, initBackend, modelToBlob } from '@fedge/ml';
import { FEDGE_AGENT, freePort, killAll, startProcess } from './harness.js';

const PYTHON = join(process.env.FEDGE_CACHE_DIR ?? join(homedir(), '.cache', 'fedge'), 'venv-triton', 'bin', 'python');
const SCRIPT = join(import.meta.dirname, '..', 'kserve', 'triton_client.py');
const ROWS = 4;
let model = '';

beforeAll(async () => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run bash scripts/install-tritonclient.sh (npm test's pretest does)`);
  await initBackend('wasm');
  const m = createBuiltinModel('mnist-mlp', 5);
  const dir = await mkdtemp(join(tmpdir(), 'fedge-kserve-'));
  model = join(dir, 'mnist.onnx');
  await writeFile(model, exportOnnx(modelToBlob(m), { quantize: 'none' }).bytes);
  m.dispose();
}, 60_000);

afterAll(() => killAll());

type Rows = number[][];
interface ClientReport {
  http_live: boolean; http_ready: boolean; http_model_ready: boolean;
  http_server_metadata: { extensions: string[] };
  http_model_metadata: { name: string; inputs: { name: string; datatype: string; shape: number[] }[] };
  http_model_config: { name: string; platform: string; input: { name: string; data_type: string; dims: number[] }[] };
  http_binary: Rows; http_binary_named: Rows; http_json: Rows; http_json_response_has_data: boolean;
  http_binary_response: { outputs: { parameters?: { binary_data_size?: number }; data?: unknown }[] };
  http_bad_shape: { status: string; message: string } | null;
  grpc_live: boolean; grpc_ready: boolean; grpc_model_ready: boolean;
  grpc_server_metadata: { extensions: string[] };
  grpc_model_metadata: { inputs: { name: string; datatype: string; shape: string[] }[] };
  grpc: Rows; grpc_named: Rows; grpc_id: string;
  grpc_bad_shape: { status: string; message: string } | null;
  grpc_unknown_model: { status: string; message: string } | null;
}

describe('KServe v2 with the stock tritonclient', () => {
  it('HTTP (binary tensor data and JSON) and gRPC agree with fedge\'s JSON path', async () => {
    const [http, grpcPort] = [await freePort(), await freePort()];
    const agent = startProcess(FEDGE_AGENT, ['serve', '--model', model, '--listen', `127.0.0.1:${http}`, '--grpc-port', String(grpcPort), '--name', 'mnist', '--version', '3']);
    await agent.waitFor(/gRPC inference server listening/);

    // fedge's own JSON path, the reference: the same rows the script builds.
    const x = Array.from({ length: ROWS * 784 }, (_, i) => Math.fround((i % 255) / 255));
    const ref = await fetch(`http://127.0.0.1:${http}/v2/models/mnist/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'input', shape: [ROWS, 784], datatype: 'FP32', data: x }] }) });
    expect(ref.status).toBe(200);
    const refOut = ((await ref.json()) as { outputs: { data: number[]; shape: number[] }[] }).outputs[0]!;
    expect(refOut.shape).toEqual([ROWS, 10]);

    const { stdout } = await promisify(execFile)(PYTHON, [SCRIPT, '--http', `127.0.0.1:${http}`, '--grpc', `127.0.0.1:${grpcPort}`, '--model', 'mnist', '--rows', String(ROWS)], { timeout: 60_000 });
    const r = JSON.parse(stdout) as ClientReport;

    expect([r.http_live, r.http_ready, r.http_model_ready, r.grpc_live, r.grpc_ready, r.grpc_model_ready]).toEqual([true, true, true, true, true, true]);
    expect(r.http_server_metadata.extensions).toContain('binary_tensor_data');
    expect(r.grpc_server_metadata.extensions).toContain('binary_tensor_data');
    expect(r.http_model_metadata.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 784] }]);
    expect(r.grpc_model_metadata.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: ['-1', '784'] }]);
    expect(r.http_model_config).toMatchObject({ name: 'mnist', platform: 'onnxruntime_onnx', input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [-1, 784] }] });
    // The default request really went binary both ways: the output came back as binary_data_size bytes, not data.
    expect(r.http_binary_response.outputs[0]!.parameters?.binary_data_size).toBe(ROWS * 10 * 4);
    expect(r.http_binary_response.outputs[0]!.data).toBeUndefined();
    expect(r.http_json_response_has_data).toBe(true);

    // Every path gives fedge's JSON answer, to float32 precision (they run the same session on the same floats).
    for (const [what, rows] of Object.entries({ http_binary: r.http_binary, http_binary_named: r.http_binary_named, http_json: r.http_json, grpc: r.grpc, grpc_named: r.grpc_named })) {
      expect(rows.length, what).toBe(ROWS);
      rows.flat().forEach((v, i) => expect(Math.abs(v - refOut.data[i]!), `${what}[${i}]`).toBeLessThan(1e-6));
    }
    expect(r.grpc_id).toBe('r-7');

    // Bad requests: a clear 400 / INVALID_ARGUMENT naming the input, NOT_FOUND for an unknown model.
    expect(r.http_bad_shape).toMatchObject({ status: '400', message: expect.stringMatching(/input "input": shape \[4,783\] does not match \[-1,784\]/) });
    expect(r.grpc_bad_shape).toMatchObject({ status: 'StatusCode.INVALID_ARGUMENT', message: expect.stringMatching(/input "input": shape \[4,783\] does not match/) });
    expect(r.grpc_unknown_model).toMatchObject({ status: 'StatusCode.NOT_FOUND', message: expect.stringMatching(/unknown model "nope"/) });
  }, 120_000);
});
