/** A misbehaving agent for tests: joins over real gRPC and answers tasks with crafted, usually invalid, results. */
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, ENCODING_OF, encodeUpdate, loadServices, UPDATE_ENCODING, type ResultHeaderMsg, type ResultPartMsg, type SubmitReplyMsg, type TaskMsg } from '@fedge/proto';
import { GrpcConnection } from '@fedge/edge-agent';

export type Fault =
  | 'nan' | 'inf' | 'shape' | 'dtype' | 'version' | 'oversized' | 'truncated' | 'size' | 'bad-offset'
  | 'wrong-run' | 'stale-round' | 'unknown-agent'
  // Compressed runs: a NaN int8 block scale, a repeated top-k index, an Infinity top-k value, a top-k count that
  // disagrees with total_bytes, and a float32 update where the run asked for compression.
  | 'int8-nan-scale' | 'topk-bad-index' | 'topk-inf' | 'topk-count' | 'uncompressed';

export interface Rogue {
  name: string;
  fault: Fault;
  replies: SubmitReplyMsg[];
  stop(): void;
}

type RawClient = grpc.Client & { SubmitResult: (cb: (err: grpc.ServiceError | null, r: SubmitReplyMsg) => void) => grpc.ClientWritableStream<ResultPartMsg> };

function submitRaw(client: RawClient, parts: ResultPartMsg[]): Promise<SubmitReplyMsg> {
  return new Promise((resolve, reject) => {
    const call = client.SubmitResult((err, r) => (err ? reject(err) : resolve(r)));
    call.on('error', () => undefined); // the server may reply and close before every part is written
    for (const p of parts) if (!call.destroyed) call.write(p);
    call.end();
  });
}

const chunk = (offset: number, data: Uint8Array): ResultPartMsg => ({ chunk: { offset, data: Buffer.from(data) } });

export async function startRogue(address: string, name: string, fault: Fault): Promise<Rogue> {
  const conn = new GrpcConnection(address);
  const raw = new (loadServices().AgentService)(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as RawClient;
  const { agentId, sessionToken } = await conn.join({ name, agentId: '', joinToken: '', backend: 'rogue', agentVersion: 'test', numExamples: 100, labels: {} });
  const replies: SubmitReplyMsg[] = [];
  const stream = conn.tasks(agentId, sessionToken);
  void (async () => {
    for await (const task of stream) {
      if (task.kind === 'evaluate') {
        // Evaluations are answered honestly so the run's final evaluation does not wait for its deadline.
        await submitRaw(raw, [{ header: { agentId, sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
          kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: {} } }]);
      }
      if (task.kind !== 'train') continue;
      replies.push(...(await answer(task)));
    }
  })().catch(() => undefined);

  async function answer(task: TaskMsg): Promise<SubmitReplyMsg[]> {
    const { header: mh } = await conn.fetchModel({ agentId, sessionToken, runId: task.runId, modelVersion: task.modelVersion });
    const n = mh.totalBytes / 4;
    const delta = new Float32Array(n).fill(0.001);
    const bytes = new Uint8Array(delta.buffer);
    const h: ResultHeaderMsg = {
      agentId, sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
      kind: 'train', numExamples: 100, tensors: mh.tensors, totalBytes: bytes.byteLength, encoding: UPDATE_ENCODING,
      metrics: { train_loss: 1 },
    };
    const whole = (hdr: ResultHeaderMsg, b: Uint8Array): ResultPartMsg[] => [{ header: hdr }, chunk(0, b)];
    const nanDelta = (v: number): Uint8Array => {
      const d = new Float32Array(n).fill(0.001);
      d[n - 1] = v; // in the last chunk: everything before it was already staged
      return new Uint8Array(d.buffer);
    };
    const send = (parts: ResultPartMsg[]): Promise<SubmitReplyMsg> => submitRaw(raw, parts);
    /** A well-formed update in the run's codec, then `spoil` applied to its bytes. */
    const compressed = (codec: 'int8' | 'topk', spoil: (dv: DataView) => void): ResultPartMsg[] => {
      const enc = encodeUpdate(new Float32Array(n).map((_, i) => ((i % 7) - 3) * 1e-3), { codec, topkFraction: task.config.topkFraction ?? 0.1 }).slice();
      spoil(new DataView(enc.buffer));
      return whole({ ...h, encoding: ENCODING_OF[codec], totalBytes: enc.byteLength }, enc);
    };
    switch (fault) {
      case 'nan': return [await send(whole(h, nanDelta(NaN)))];
      case 'inf': return [await send(whole(h, nanDelta(Infinity)))];
      case 'shape': {
        const tensors = h.tensors.map((t, i) => (i === 0 ? { ...t, shape: [...t.shape.slice(0, -1), t.shape.at(-1)! + 1] } : t));
        return [await send(whole({ ...h, tensors }, bytes))];
      }
      case 'dtype': return [await send(whole({ ...h, tensors: h.tensors.map((t) => ({ ...t, dtype: 'int32' })) }, bytes))];
      case 'version': return [await send(whole({ ...h, modelVersion: h.modelVersion + 1 }, bytes))];
      case 'size': return [await send(whole({ ...h, totalBytes: h.totalBytes - 4 }, bytes.subarray(4)))];
      case 'oversized': return [await send([{ header: h }, chunk(0, bytes), chunk(bytes.byteLength, new Uint8Array(1024))])];
      case 'truncated': return [await send([{ header: h }, chunk(0, bytes.subarray(0, bytes.byteLength >> 1))])];
      case 'bad-offset': return [await send([{ header: h }, chunk(0, bytes.subarray(0, 1024)), chunk(4096, bytes.subarray(4096))])];
      // Faults that name no valid task cannot be charged to this agent; it then sends a NaN update to finish its task.
      case 'wrong-run': return [await send(whole({ ...h, runId: 'run-00000000' }, bytes)), await send(whole(h, nanDelta(NaN)))];
      case 'stale-round': return [await send(whole({ ...h, round: h.round + 5 }, bytes)), await send(whole(h, nanDelta(NaN)))];
      case 'unknown-agent': return [await send(whole({ ...h, agentId: 'agent-ffffffff' }, bytes)), await send(whole(h, nanDelta(NaN)))];
      case 'int8-nan-scale': return [await send(compressed('int8', (dv) => dv.setFloat32(4 + 1024 + 4 + 1024, NaN, true)))];
      case 'topk-bad-index': return [await send(compressed('topk', (dv) => dv.setUint32(4 + 8 * 3, dv.getUint32(4 + 8 * 2, true), true)))];
      case 'topk-inf': return [await send(compressed('topk', (dv) => dv.setFloat32(4 + 8 * 5 + 4, Infinity, true)))];
      case 'topk-count': return [await send(compressed('topk', (dv) => dv.setUint32(0, dv.getUint32(0, true) - 1, true)))];
      case 'uncompressed': return [await send(whole(h, bytes))];
    }
  }

  return {
    name,
    fault,
    replies,
    stop: () => {
      stream.cancel();
      conn.close();
      raw.close();
    },
  };
}
