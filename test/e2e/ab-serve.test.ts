/**
 * End to end: `fedge-agent serve --model A --ab-model B --ab-fraction F` A/B-tests two ONNX models in one real server
 * process: about F of request ids get B, each id always the same model, named in model_version and x-model-version.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBuiltinModel, exportOnnx, initBackend, loadMnist, modelToBlob } from '@fedge/ml';
import { FEDGE_AGENT, killAll, startProcess } from './harness.js';

afterAll(() => killAll());

describe('fedge-agent serve --ab-model', () => {
  it('splits requests by id between the two models, sticky, naming the one that answered', async () => {
    await initBackend('wasm');
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-ab-'));
    const files = [1, 2].map((seed) => {
      const m = createBuiltinModel('mnist-mlp', seed);
      const file = path.join(dir, `m${seed}.onnx`);
      writeFileSync(file, exportOnnx(modelToBlob(m), { quantize: 'int8' }).bytes);
      m.dispose();
      return file;
    });
    const p = startProcess(FEDGE_AGENT, ['serve', '--model', files[0]!, '--ab-model', files[1]!, '--ab-version', '7', '--ab-fraction', '0.3', '--listen', '127.0.0.1:0', '--name', 'mnist', '--format', 'json']);
    const ready = JSON.parse(await p.waitFor(/"event":"ready"/)) as { url: string; version: string; ab: { version: string; fraction: number } };
    expect(ready).toMatchObject({ version: '1', ab: { version: '7', fraction: 0.3 } });
    const { test } = loadMnist();
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(test.x.subarray(0, 784)) }] });
    const ask = async (id: string): Promise<string> => {
      const res = await fetch(`${ready.url}/v2/models/mnist/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body });
      const json = (await res.json()) as { model_version: string };
      expect(res.status).toBe(200);
      expect(res.headers.get('x-model-version')).toBe(json.model_version);
      return json.model_version;
    };
    const first = new Map<string, string>();
    for (let i = 0; i < 300; i++) first.set(`user-${i}`, await ask(`user-${i}`));
    const share = [...first.values()].filter((v) => v === '7').length / first.size;
    // 300 ids at p = 0.3: sd 0.026; 4 sd of tolerance.
    expect(Math.abs(share - 0.3)).toBeLessThan(0.105);
    expect(new Set(first.values())).toEqual(new Set(['1', '7']));
    for (let i = 0; i < 50; i++) expect(await ask(`user-${i}`)).toBe(first.get(`user-${i}`));
    console.log(JSON.stringify({ ids: first.size, shareToAbModel: share }));
  }, 60_000);
});
