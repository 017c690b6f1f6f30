/**
 * What the coordinator receives under secure aggregation, instrumented in a real run (coordinator, gRPC, the agents'
 * SecAggSession): every masked input looks uniform (chi-square on its bytes), yet the model moves by exactly the
 * plaintext weighted mean of the updates, within the quantization bound. The updates are synthetic (no training), so
 * the test knows each one.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SECAGG_ENCODING,
  UPDATE_ENCODING,
  bytesToFloat32,
  createRng,
  quantizationBound,
  quantizeInto,
  secaggParams,
  type ResultHeaderMsg,
  type TaskMsg,
} from '@fedge/proto';
import { Coordinator } from '../../packages/coordinator/src/coordinator.js';
import { startGrpcServer } from '../../packages/coordinator/src/transport/grpc/server.js';
import type { UploadSink } from '../../packages/coordinator/src/engine/upload.js';
import { GrpcConnection } from '../../packages/edge-agent/src/transport/grpc/grpc-connection.js';
import { SecAggSession } from '../../packages/edge-agent/src/secagg.js';

const N = 5;
/** Agent 0 drops out after its masked input (its self mask is removed with the others' shares). */
const DROPOUT = 0;

/** Pearson's chi-square of the byte histogram against uniform (255 degrees of freedom). */
function chiSquare(bytes: Uint8Array): number {
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]!++;
  const e = bytes.length / 256;
  let x = 0;
  for (const c of counts) x += ((c - e) * (c - e)) / e;
  return x;
}
/** Upper 0.1% point of chi-square(255): 255 + 3.09 sqrt(2 x 255) + small-sample skew is about 330. */
const CHI2_CRIT = 330;

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

describe('secure aggregation: what the coordinator sees', () => {
  it('every masked input is uniform-looking, the unmasked mean equals the plaintext weighted mean within the quantization bound', async () => {
    const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-secagg-')), joinToken: 'tok' });
    const server = await startGrpcServer(coord, { host: '127.0.0.1', port: 0 }, 'admin');
    cleanup.push(() => coord.close(), () => server.close());

    // Instrument: a copy of every masked input's bytes as the transport hands them to the coordinator.
    const received = new Map<string, Uint8Array>();
    const begin = coord.beginUpload.bind(coord);
    coord.beginUpload = async (h: ResultHeaderMsg): Promise<UploadSink> => {
      const sink = await begin(h);
      if (h.encoding !== SECAGG_ENCODING) return sink;
      const copy = new Uint8Array(h.totalBytes);
      return {
        write: (offset, data) => {
          copy.set(data, offset);
          sink.write(offset, data);
        },
        commit: async () => {
          const r = await sink.commit();
          if (r.accepted) received.set(h.agentId, copy);
          return r;
        },
        abort: (reason) => sink.abort(reason),
      };
    };

    const plain = new Map<string, { delta: Float32Array; weight: number }>();
    let base: Float32Array | undefined;
    const rng = createRng(7);
    const agents = Array.from({ length: N }, (_, i) => {
      const conn = new GrpcConnection(server.address);
      cleanup.push(() => conn.close());
      return (async () => {
        const j = await conn.join({ name: `sa-${i}`, agentId: '', joinToken: 'tok', backend: 'cpu', agentVersion: 't', numExamples: 100, labels: {} } as never);
        const s = { agentId: j.agentId, sessionToken: j.sessionToken };
        const stream = conn.tasks(s.agentId, s.sessionToken);
        cleanup.push(() => stream.cancel());
        for await (const task of stream as AsyncIterable<TaskMsg>) {
          const model = await conn.fetchModel({ ...s, runId: task.runId, modelVersion: task.modelVersion });
          const head = { ...s, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion };
          if (task.kind === 'evaluate') {
            await conn.submit({ ...head, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: {} }, new Uint8Array(0));
            continue;
          }
          if (task.kind !== 'train') continue;
          base ??= bytesToFloat32(model.bytes);
          const sa = SecAggSession.of(task, conn, s)!;
          sa.start();
          const m = base.length;
          const delta = new Float32Array(m);
          for (let k = 0; k < m; k++) delta[k] = (rng() - 0.5) * 0.02 + (i - 2) * 0.004;
          const weight = 200 + i * 350; // unequal: the weighted and the plain mean differ
          plain.set(s.agentId, { delta, weight });
          const header: ResultHeaderMsg = { ...head, kind: 'train', numExamples: weight, tensors: model.header.tensors, totalBytes: delta.byteLength, encoding: UPDATE_ENCODING, metrics: { train_loss: 1 } };
          const masked = await sa.mask(header, new Uint8Array(delta.buffer));
          const reply = await conn.submit(masked.header, masked.payload);
          expect(reply).toMatchObject({ accepted: true });
          if (i !== DROPOUT) await sa.unmask();
        }
      })();
    });
    // An agent loop that fails (a refused stage, say) ends the test with its error instead of a run that never finishes.
    const failures: unknown[] = [];
    for (const a of agents) a.catch((err: unknown) => failures.push(err));

    const run = await coord.startRun({ rounds: 1, agentsPerRound: { min: N }, centralEvaluation: false, secureAggregation: { unmaskSeconds: 3 } });
    let view = await coord.getRun(run.id);
    for (let t = 0; t < 1200 && failures.length === 0 && !['completed', 'failed', 'stopped'].includes(view.status); t++) {
      await new Promise((r) => setTimeout(r, 100));
      view = await coord.getRun(run.id);
    }
    expect(failures).toEqual([]);
    expect(view.status).toBe('completed');
    expect(view.rounds[0]).toMatchObject({ status: 'completed', version: 1 });
    expect(received.size).toBe(N);

    // 1. Each masked input: bytes indistinguishable from uniform; the same vector quantized but unmasked is not.
    const params = secaggParams(N, { maxWeight: 100_000, clipRange: 1, bits: 32 });
    const x2s: number[] = [];
    for (const [id, bytes] of received) {
      const x2 = chiSquare(bytes);
      x2s.push(Math.round(x2));
      expect(x2, `masked input of ${id}`).toBeLessThan(CHI2_CRIT);
      const q = new Uint32Array(base!.length + 1);
      quantizeInto(q, plain.get(id)!.delta, plain.get(id)!.weight, params);
      expect(chiSquare(new Uint8Array(q.buffer)), 'an unmasked quantized update is far from uniform').toBeGreaterThan(10 * CHI2_CRIT);
    }

    // 2. The new model is base + the unmasked weighted mean (fedavg, server learning rate 1).
    const v1 = (await coord.runModel(run.id, 1)).blob.weights;
    const m = base!.length;
    let W = 0;
    for (const p of plain.values()) W += p.weight;
    const bound = quantizationBound(params, N);
    let worst = 0;
    let plainVsWeighted = 0;
    for (let k = 0; k < m; k++) {
      let ws = 0;
      let s = 0;
      for (const p of plain.values()) {
        ws += p.weight * p.delta[k]!;
        s += p.delta[k]!;
      }
      const want = ws / W;
      worst = Math.max(worst, Math.abs(v1[k]! - base![k]! - want));
      plainVsWeighted = Math.max(plainVsWeighted, Math.abs(s / N - want));
    }
    // The mean's error: the weighted sum's and the weight sum's quantization errors, plus float32 rounding of base + mean.
    const tol = (bound.weightedSum + 0.03 * bound.weightSum) / (W - bound.weightSum) + 1e-6;
    console.log(`secagg masked inputs: chi-square ${x2s.join(', ')} (< ${CHI2_CRIT}); max |unmasked - plaintext weighted mean| ${worst.toExponential(2)} (bound ${tol.toExponential(2)}); unweighted mean off by ${plainVsWeighted.toExponential(2)}`);
    expect(worst).toBeLessThan(tol);
    // ... and the check can tell weighting apart: the unweighted mean is far outside it.
    expect(plainVsWeighted).toBeGreaterThan(100 * tol);
  }, 120_000);
});
