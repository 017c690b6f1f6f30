/** A 105 MB model travels both ways over real gRPC between processes: never limited by the 4 MB message default. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GrpcConnection } from '@fedge/edge-agent';
import { modelDigest, UPDATE_ENCODING, type TaskMsg } from '@fedge/proto';
import { initBackend, modelToBlob, saveModelDir, tf } from '@fedge/ml';
import { fedge, killAll, lastJson, startCoordinator } from './harness.js';

afterAll(() => killAll());

describe('large payloads', () => {
  it('streams a >= 100 MB model down and a >= 100 MB update up', async () => {
    await initBackend('cpu');
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-big-'));
    const units = 5120; // 5120 x 5120 + 5120 float32 = 104.9 MB
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [units], units, kernelInitializer: 'zeros' })] });
    const blob = modelToBlob(model);
    model.dispose();
    blob.weights[12345] = 0.5;
    const modelJson = await saveModelDir(blob, dir);
    expect(blob.weights.byteLength).toBeGreaterThanOrEqual(100e6);

    const coord = await startCoordinator();
    const conn = new GrpcConnection(coord.address);
    const { agentId, sessionToken } = await conn.join({ name: 'big', agentId: '', joinToken: '', backend: 'test', agentVersion: 'test', numExamples: 10, labels: {} });
    const stream = conn.tasks(agentId, sessionToken);
    const start = await fedge(['run', 'start', '--coordinator', coord.address, '--model', modelJson, '--rounds', '1', '--min-agents', '1', '--format', 'json']);
    expect(start.code, start.stderr).toBe(0);
    const runId = lastJson<{ id: string }>(start.stdout).id;

    let downMBps = 0;
    let upMBps = 0;
    for await (const task of stream as AsyncIterable<TaskMsg>) {
      if (task.kind === 'evaluate') {
        await conn.submit({ agentId, sessionToken, taskId: task.taskId, runId, round: task.round, modelVersion: task.modelVersion, kind: 'evaluate',
          numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: { eval_accuracy: 0.5, eval_examples: 1 } }, new Uint8Array(0));
        break;
      }
      if (task.kind !== 'train') continue; // e.g. announcements of new versions, for serving agents
      let t0 = performance.now();
      const { header, bytes } = await conn.fetchModel({ agentId, sessionToken, runId, modelVersion: task.modelVersion });
      downMBps = bytes.byteLength / 1e6 / ((performance.now() - t0) / 1000);
      expect(bytes.byteLength).toBe(blob.weights.byteLength);
      expect(modelDigest(header.topologyJson, header.tensors as never, bytes)).toBe(task.modelSha256);
      expect(new Float32Array(bytes.buffer, bytes.byteOffset, 4)[0]).toBe(0);

      const delta = new Float32Array(bytes.byteLength / 4);
      delta[7] = 1.25;
      t0 = performance.now();
      const reply = await conn.submit({ agentId, sessionToken, taskId: task.taskId, runId, round: task.round, modelVersion: task.modelVersion, kind: 'train',
        numExamples: 10, tensors: header.tensors, totalBytes: delta.byteLength, encoding: UPDATE_ENCODING, metrics: {} }, new Uint8Array(delta.buffer));
      upMBps = delta.byteLength / 1e6 / ((performance.now() - t0) / 1000);
      expect(reply).toMatchObject({ accepted: true });
    }
    stream.cancel();
    conn.close();
    console.log(`105 MB model: download ${downMBps.toFixed(0)} MB/s, upload ${upMBps.toFixed(0)} MB/s`);

    let run: { status: string; modelVersion: number } = { status: '', modelVersion: 0 };
    for (let i = 0; i < 100 && run.status !== 'completed'; i++) {
      run = lastJson(( await fedge(['run', 'show', runId, '--coordinator', coord.address, '--format', 'json'])).stdout);
      if (run.status !== 'completed') await new Promise((r) => setTimeout(r, 200));
    }
    expect(run).toMatchObject({ status: 'completed', modelVersion: 1 });
  }, 180_000);
});
