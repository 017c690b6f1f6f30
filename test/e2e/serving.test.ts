/** End to end: an agent serves every new global version over HTTP while federating; fedge model export; fedge-agent serve. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadMnist } from '@fedge/ml';
import { FEDGE_AGENT, fedge, killAll, lastJson, startAgent, startCoordinator, startProcess, freePort } from './harness.js';


const { test } = loadMnist();
const N = 200;
const body = (n: number, from = 0) => JSON.stringify({ inputs: [{ name: 'input', shape: [n, 784], datatype: 'FP32', data: Array.from(test.x.subarray(from * 784, (from + n) * 784)) }] });
const argmax = (v: ArrayLike<number>, r: number) => {
  let b = 0;
  for (let k = 1; k < 10; k++) if (v[r * 10 + k]! > v[r * 10 + b]!) b = k;
  return b;
};

afterAll(() => killAll());

describe('edge serving', () => {
  it('an agent with --serve hot-swaps each global version under continuous requests; exports and standalone serving agree', async () => {
    const coord = await startCoordinator();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const agents = [0, 1].map((i) =>
      startAgent(coord.address, ['--name', `s-${i}`, '--partition', 'iid', '--num-partitions', '2', '--partition-id', String(i), '--seed', '3',
        ...(i === 0 ? ['--serve', `127.0.0.1:${port}`, '--serve-name', 'mnist'] : [])]),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    await agents[0]!.waitFor(/inference server listening/);
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(503); // nothing to serve before a run

    // A client that keeps asking while versions are swapped in: once ready, no request may fail.
    let stop = false;
    const failures: string[] = [];
    const versions = new Set<string>();
    const client = (async () => {
      while (!stop) {
        const r = await fetch(`${base}/v2/models/mnist/infer`, { method: 'POST', body: body(4) });
        if (r.status === 200) versions.add(String(((await r.json()) as { model_version: string }).model_version));
        else if (versions.size > 0) failures.push(`${r.status} ${await r.text()}`);
        else await r.arrayBuffer();
        if (versions.size === 0) await new Promise((res) => setTimeout(res, 50));
      }
    })();

    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '4', '--min-agents', '2',
      '--epochs', '1', '--lr', '0.1', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ id: string; status: string }>(res.stdout);
    expect(run.status).toBe('completed');
    await agents[0]!.waitFor(/"version":4.*serving new global model version|serving new global model version.*"version":4/, 30_000);
    stop = true;
    await client;
    expect(failures).toEqual([]);
    expect(versions.has('4')).toBe(true);
    expect(versions.size).toBeGreaterThanOrEqual(2);
    const meta = (await (await fetch(`${base}/v2/models/mnist`)).json()) as { version: string; versions: string[]; parameters: Record<string, unknown> };
    expect(meta.version).toBe('4');
    expect(meta.versions).toEqual(['4', '3']);
    expect(meta.parameters).toMatchObject({ run: run.id, global_version: 4, quantization: 'int8-dynamic' });

    // The served int8 model agrees with the float export of the same version.
    const dir = await mkdtemp(join(tmpdir(), 'fedge-serve-'));
    const fp = join(dir, 'v4.onnx');
    const exp = await fedge(['model', 'export', '--run', run.id, '--version', '4', '--coordinator', coord.address, '--format', 'onnx', '-o', fp, '--json']);
    expect(exp.code, exp.stderr).toBe(0);
    expect(lastJson<{ quantization: string; source: { version: number } }>(exp.stdout)).toMatchObject({ quantization: 'none', source: { version: 4 } });
    const missing = await fedge(['model', 'export', '--run', run.id, '--version', '99', '--coordinator', coord.address, '-o', join(dir, 'x.onnx')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/no model version 99/);
    const session = await ort.InferenceSession.create(new Uint8Array(await readFile(fp)));
    const ref = (await session.run({ input: new ort.Tensor('float32', test.x.slice(0, N * 784), [N, 784]) }))['output']!.data as Float32Array;
    const served = ((await (await fetch(`${base}/v2/models/mnist/infer`, { method: 'POST', body: body(N) })).json()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    let same = 0;
    for (let r = 0; r < N; r++) if (argmax(served, r) === argmax(ref, r)) same++;
    expect(same / N).toBeGreaterThanOrEqual(0.97);

    // Standalone serving of an int8 export, as on an air-gapped device.
    const q = join(dir, 'v4.int8.onnx');
    expect((await fedge(['model', 'export', '--run', run.id, '--coordinator', coord.address, '--quantize', 'int8', '-o', q])).code).toBe(0);
    expect((await stat(q)).size / (await stat(fp)).size).toBeLessThanOrEqual(0.3);
    const port2 = await freePort();
    const solo = startProcess(FEDGE_AGENT, ['serve', '--model', q, '--listen', `127.0.0.1:${port2}`, '--name', 'digits', '--version', '4']);
    await solo.waitFor(/inference server listening/);
    const r2 = await fetch(`http://127.0.0.1:${port2}/v2/models/digits/infer`, { method: 'POST', body: body(N) });
    expect(r2.status).toBe(200);
    const out2 = ((await r2.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data;
    out2.forEach((v, i) => expect(Math.abs(v - served[i]!)).toBeLessThan(1e-5));
    expect((await fetch(`http://127.0.0.1:${port2}/v2/models/mnist/infer`, { method: 'POST', body: body(1) })).status).toBe(404);
    await session.release();
  }, 240_000);
});
