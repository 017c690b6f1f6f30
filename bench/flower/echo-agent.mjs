// An agent that does what Flower's benchmark client does, no more: for every training task it downloads the global
// model with fedge's real gRPC client (chunked stream, sha256 checked against the announced digest, as every agent
// does), and uploads a full-size float32 update of 1e-6 weighted by 9 examples. No tfjs, no training, no evaluation:
// with it, bench/flower.mjs compares the two frameworks' round machinery on the same (empty) work.
// Usage: node bench/flower/echo-agent.mjs HOST:PORT NAME
import { GrpcConnection } from '@fedge/edge-agent';
import { UPDATE_ENCODING, modelDigest } from '@fedge/proto';

const [address, name] = process.argv.slice(2);
if (!address || !name) {
  process.stderr.write('usage: node bench/flower/echo-agent.mjs HOST:PORT NAME\n');
  process.exit(2);
}
const EXAMPLES = 9;
const conn = new GrpcConnection(address);
const { agentId, sessionToken } = await conn.join({ name, agentId: '', joinToken: '', backend: 'none (echo)', agentVersion: 'bench', numExamples: EXAMPLES, labels: {} });
process.stderr.write(`joined coordinator as ${agentId}\n`);
const stop = () => { conn.close(); process.exit(0); };
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
for await (const task of conn.tasks(agentId, sessionToken)) {
  const base = { agentId, sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion, metrics: {} };
  if (task.kind === 'evaluate') {
    await conn.submit({ ...base, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '' }, new Uint8Array(0));
    continue;
  }
  if (task.kind !== 'train') continue;
  const model = await conn.fetchModel({ agentId, sessionToken, runId: task.runId, modelVersion: task.modelVersion });
  const digest = model.sha256 ?? modelDigest(model.header.topologyJson, model.header.tensors, model.bytes);
  if (digest !== task.modelSha256) throw new Error(`sha256 mismatch for version ${task.modelVersion}`);
  const delta = new Float32Array(model.header.totalBytes / 4).fill(1e-6);
  const reply = await conn.submit(
    { ...base, kind: 'train', numExamples: EXAMPLES, tensors: model.header.tensors, totalBytes: delta.byteLength, encoding: UPDATE_ENCODING, metrics: { train_loss: 0 } },
    new Uint8Array(delta.buffer),
  );
  if (!reply.accepted) process.stderr.write(`rejected: ${reply.reason}: ${reply.message}\n`);
}
