/** The agent's side of compressed downloads: a delta chain from the held version is rebuilt and verified, a bad one refused for the full model. */
import { describe, expect, it } from 'vitest';
import { chainEncoding, encodeChain, float32ToBytes, modelDigest, parsePipeline, publishDelta, type TaskMsg } from '@fedge/proto';
import { TaskExecutor } from './executor.js';
import type { LocalData } from './data.js';
import type { CoordinatorConnection } from './transport/connection.js';

const n = 5000;
const tensors = [{ name: 'w', dtype: 'float32', shape: [n] }];
const topologyJson = '{"layers":[]}';
const p = parsePipeline('delta+fp16', 'downlink');

function versions() {
  const v1 = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const { weights: v2, payload } = publishDelta(v1, v1.map((x, i) => x + 0.01 * Math.cos(i)), p);
  const model = (v: number, w: Float32Array) => {
    const bytes = float32ToBytes(w);
    const sha256 = modelDigest(topologyJson, tensors as never, bytes);
    return { bytes, header: { runId: 'r', modelVersion: v, topologyJson, tensors, totalBytes: bytes.byteLength, sha256 } };
  };
  return { m1: model(1, v1), m2: model(2, v2), chain: encodeChain([payload]) };
}

const task = (v: number, sha: string): TaskMsg => ({
  taskId: `t${v}`, runId: 'r', round: v, modelVersion: v, kind: 'evaluate', modelSha256: sha, modelBytes: 4 * n, config: { epochs: 1, batchSize: 1, learningRate: 0.1, seed: 1 }, deadlineUnixMs: 0,
});

function connection(corrupt: boolean) {
  const { m1, m2, chain } = versions();
  const calls: { modelVersion: number; haveVersion?: number }[] = [];
  const conn = {
    fetchModel: async (req: { modelVersion: number; haveVersion?: number; haveSha256?: string }) => {
      calls.push({ modelVersion: req.modelVersion, ...(req.haveSha256 ? { haveVersion: req.haveVersion } : {}) });
      const m = req.modelVersion === 1 ? m1 : m2;
      if (req.modelVersion === 2 && req.haveSha256 === m1.header.sha256) {
        const payload = chain.slice();
        if (corrupt) payload[200]! ^= 0x40;
        return { header: { ...m.header, totalBytes: payload.byteLength, encoding: chainEncoding(p), baseVersion: 1 }, bytes: payload };
      }
      return { header: m.header, bytes: m.bytes.slice() };
    },
  } as unknown as CoordinatorConnection;
  return { conn, calls, m1, m2 };
}

describe('compressed downloads on the agent', () => {
  it('rebuilds the next version from its delta chain, bit-exactly (the signed sha256 matches)', async () => {
    const { conn, calls, m1, m2 } = connection(false);
    const ex = new TaskExecutor({} as LocalData);
    await ex.verifiedModel(task(1, m1.header.sha256), conn, { agentId: 'a', sessionToken: 's' });
    const got = await ex.verifiedModel(task(2, m2.header.sha256), conn, { agentId: 'a', sessionToken: 's' });
    expect(calls).toEqual([{ modelVersion: 1 }, { modelVersion: 2, haveVersion: 1 }]);
    expect(Buffer.from(got.weights.buffer, got.weights.byteOffset, got.weights.byteLength).equals(Buffer.from(m2.bytes))).toBe(true);
    expect(got.header.totalBytes).toBe(4 * n);
    await ex.close();
  });

  it('refuses a corrupted delta (its rebuild misses the sha256) and falls back to the full model', async () => {
    const { conn, calls, m1, m2 } = connection(true);
    const ex = new TaskExecutor({} as LocalData);
    await ex.verifiedModel(task(1, m1.header.sha256), conn, { agentId: 'a', sessionToken: 's' });
    const got = await ex.verifiedModel(task(2, m2.header.sha256), conn, { agentId: 'a', sessionToken: 's' });
    expect(calls).toEqual([{ modelVersion: 1 }, { modelVersion: 2, haveVersion: 1 }, { modelVersion: 2 }]);
    expect(got.sha256).toBe(m2.header.sha256);
    await ex.close();
  });
});
