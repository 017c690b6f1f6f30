/**
 * gRPC side of the fuzz test: seeded hostile calls on every AgentService and AdminService method through grpc-js with
 * raw (identity) serializers, so any bytes reach the server, and the outcome of each: status code, time, and whether
 * the coordinator accepted something it must refuse.
 */
import * as grpc from '@grpc/grpc-js';
import { loadServices } from '@fedge/proto';
import { Gen, reportBody } from './fuzz-gen.js';

/** What the fuzzer knows of the real run: ids to forge, and one agent session of its own (never a task channel). */
export interface GrpcTargets {
  address: string;
  realAgentIds: string[];
  runId: string;
  /** Joined with the real token: FetchModel and SubmitResult with a valid session reach past authentication. */
  insider: { agentId: string; sessionToken: string };
  adminToken: string;
}

type Kind = 'unary' | 'server' | 'client';
export interface GrpcCase {
  method: string;
  path: string;
  kind: Kind;
  label: string;
  md: grpc.Metadata;
  messages: Buffer[];
  /** A refusal is required (forged credentials, or the admin token with input no method may accept). */
  mustRefuse: boolean;
}

export interface GrpcOutcome {
  method: string;
  label: string;
  code: number;
  ms: number;
  /** The server accepted what it must refuse (status OK, a successful submit reply, or data on a forged stream). */
  accepted: boolean;
  details: string;
}

const svc = loadServices();
type Def = Record<string, { path: string; requestStream: boolean; responseStream: boolean; requestSerialize: (v: unknown) => Buffer; responseDeserialize: (b: Buffer) => unknown }>;
const defs = { AgentService: svc.AgentService.service as unknown as Def, AdminService: svc.AdminService.service as unknown as Def };
export const METHODS = [...Object.keys(defs.AgentService).map((m) => ['AgentService', m] as const), ...Object.keys(defs.AdminService).map((m) => ['AdminService', m] as const)];

/** Encodes `value` as `method`'s request; values the encoder itself refuses become raw protobuf garbage. */
function encode(g: Gen, d: Def[string], value: unknown): Buffer {
  try {
    return d.requestSerialize(value);
  } catch {
    return g.protoGarbage();
  }
}

/** A plausible run id that names no run, or one the id schema refuses. */
const fakeRun = (g: Gen): string => g.pick([`run-${g.hex(8)}`, g.str(), '']);

function agentId(g: Gen, t: GrpcTargets): string {
  return g.pick([...t.realAgentIds, t.insider.agentId, `agent-${g.hex(8)}`, '', g.str()]);
}
const badSession = (g: Gen): string => g.pick(['', g.hex(48), g.hex(47), g.str(), 'zz']);

function tensorSpecs(g: Gen): unknown[] {
  if (g.chance(0.1)) return Array.from({ length: 300 }, (_, i) => ({ name: `t${i}`, dtype: 'float32', shape: [1] }));
  return Array.from({ length: g.int(4) }, () => ({ name: g.pick(['dense/kernel', g.str()]), dtype: g.pick(['float32', 'int32', 'bfloat16', g.str()]), shape: Array.from({ length: g.int(10) }, () => g.pick([0, 1, 784, 2 ** 31 - 1, 2 ** 40])) }));
}

/** Request values per method: forged credentials, hostile fields. `insider`: use the fuzzer's own valid session. */
function requestValue(g: Gen, method: string, t: GrpcTargets, insider: boolean): unknown {
  const creds = insider ? { agentId: t.insider.agentId, sessionToken: t.insider.sessionToken } : { agentId: agentId(g, t), sessionToken: badSession(g) };
  const runId = g.pick([t.runId, fakeRun(g)]);
  switch (method) {
    case 'Join':
      return {
        name: g.str(), agentId: agentId(g, t), joinToken: g.pick(['', 'wrong-token', g.str()]), backend: g.str(), agentVersion: g.str(),
        numExamples: g.num(), labels: Object.fromEntries(Array.from({ length: g.int(5) }, () => [g.str(), g.str()])),
        dataProfileJson: g.pick(['', '{', '{"format":"csv","n":-1,"columns":[]}', 'x'.repeat(70_000), g.str()]),
        enrollCode: g.pick(['', g.str(), g.hex(32)]), publicKey: g.pick(['', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', g.str()]),
        challengeNonce: g.pick(['', g.hex(32), g.str()]), challengeTimeUnixMs: g.num(), signature: g.bytes(g.pick([0, 64, 65, 1000])),
      };
    case 'Challenge': return { name: g.str() };
    case 'Report': return { ...creds, bodyJson: reportBody(g, t.runId) };
    case 'Tasks': return creds;
    case 'FetchModel': return { ...creds, runId, modelVersion: g.pick([0, 1, 2, g.num()]), blobSha256: g.pick(['', '', g.hex(64), g.str()]) };
    case 'StartRun': return { configJson: g.pick(['', '{', 'null', '42', '[]', '"mnist-mlp"', '{"model":"mnist-mlp","rounds":-1}', '{"model":"mnist-mlp","rounds":1e308}', '{"model":{"builtin":"../../x"}}', '{"model":"mnist-mlp","learningRate":"NaN","rounds":"x"}', `{"model":"mnist-mlp","strategy":"${g.hex(6)}"}`, g.str()]) };
    case 'GetRun': case 'StopRun': case 'RollbackModel': case 'WatchRun': return { runId };
    case 'FetchRunModel': return { runId, modelVersion: g.num() };
    case 'PromoteModel': return { runId, modelVersion: g.num(), canary: g.num(), margin: g.num(), force: g.chance(0.5) };
    case 'EnrollAgent': return { name: g.pick(['', 'x'.repeat(200), 'a\nb', g.str()]), ttlSeconds: g.num() };
    case 'RevokeAgent': return { name: g.str() };
    default: return {};
  }
}

function resultParts(g: Gen, d: Def[string], t: GrpcTargets, insider: boolean): Buffer[] {
  const creds = insider ? { agentId: t.insider.agentId, sessionToken: t.insider.sessionToken } : { agentId: agentId(g, t), sessionToken: badSession(g) };
  const header = {
    ...creds, taskId: g.pick([`task-${g.hex(8)}`, g.str()]), runId: g.pick([t.runId, t.runId, fakeRun(g)]), round: g.pick([0, 1, 2, 3, g.num()]),
    modelVersion: g.pick([0, 1, g.num()]), kind: g.pick(['train', 'evaluate', g.str()]), numExamples: g.num(), tensors: tensorSpecs(g),
    totalBytes: g.pick([0, 4, 1024, 2 ** 31, 2 ** 50, g.num()]), encoding: g.pick(['float32-delta', 'int8-delta', 'topk-delta', g.str()]),
    metrics: { train_loss: g.num(), [g.str()]: g.num() }, error: g.pick(['', '', 'x'.repeat(5000)]), controlVariateDelta: g.chance(0.2),
    signature: g.bytes(g.pick([0, 64])),
  };
  // Half the time a header that passes validation, so the upload reaches the run (and is refused there: no such
  // task, or not this agent's) with a poisoned payload behind it.
  if (g.chance(0.5))
    Object.assign(header, { taskId: `task-${g.hex(8)}`, runId: t.runId, round: g.int(5), modelVersion: g.int(5), kind: g.pick(['train', 'evaluate']), numExamples: 100,
      tensors: [{ name: 'dense/kernel', dtype: 'float32', shape: [784, 128] }], totalBytes: g.pick([4, 401_408, 2 ** 40]), encoding: 'float32-delta', metrics: { train_loss: 1 }, error: '' });
  const chunk = (): Buffer => encode(g, d, { chunk: { offset: g.pick([0, 0, 4, -1, 2 ** 52, g.num()]), data: g.chance(0.7) ? g.floats(g.len(1 << 18)) : g.bytes(g.len(4096)) } });
  const parts: Buffer[] = [];
  const shape = g.int(6);
  if (shape !== 1) parts.push(encode(g, d, { header })); // shape 1: chunks with no header first
  if (shape === 2) parts.push(encode(g, d, { header }));  // two headers
  for (let i = 0, n = g.int(4); i < n; i++) parts.push(chunk());
  if (shape === 3) parts.push(g.protoGarbage());
  if (shape === 4 && g.chance(0.2)) parts.push(Buffer.alloc((8 << 20) + 16, g.int(256))); // over the 8 MiB message limit
  return parts;
}

/** One seeded case on `method` (or a random method). */
export function grpcCase(g: Gen, t: GrpcTargets): GrpcCase {
  const [service, method] = g.pick(METHODS);
  const d = defs[service][method]!;
  const kind: Kind = d.requestStream ? 'client' : d.responseStream ? 'server' : 'unary';
  const md = new grpc.Metadata();
  // The admin token only with requests no method may accept (a run that does not exist, a config that does not parse).
  const admin = service === 'AdminService';
  const validAdmin = admin && g.chance(0.35) && !['ListRuns', 'ListAgents', 'ListIdentities'].includes(method);
  if (admin) {
    const auth = validAdmin ? `Bearer ${t.adminToken}` : g.pick([undefined, 'Bearer ', `Bearer ${t.adminToken}x`, `Bearer ${t.adminToken.slice(1)}`, t.adminToken.toUpperCase(), `Bearer ${g.hex(16)}`, `Basic ${g.hex(64)}`]);
    if (auth !== undefined) md.set('authorization', auth);
  }
  if (g.chance(0.05)) md.set(`x-fuzz-${g.hex(4)}`, g.hex(g.pick([10, 4000])));
  const insider = !admin && (method === 'FetchModel' || method === 'SubmitResult') && g.chance(0.3);
  let label: string;
  let messages: Buffer[];
  const style = g.int(10);
  if (method === 'SubmitResult' && style < 7) {
    label = insider ? 'parts/insider' : 'parts/forged';
    messages = resultParts(g, d, t, insider);
  } else if (style < 5) {
    label = insider ? 'fields/insider' : 'fields';
    messages = [encode(g, d, validAdmin ? adminRefusable(g, method, t) : requestValue(g, method, t, insider))];
  } else if (style < 7) {
    label = 'mutated';
    messages = [g.mutate(encode(g, d, validAdmin ? adminRefusable(g, method, t) : requestValue(g, method, t, false)))];
  } else if (style < 9) {
    label = 'wire-types';
    messages = [g.protoGarbage()];
  } else {
    label = g.chance(0.1) ? 'oversized' : 'random-bytes';
    messages = [label === 'oversized' ? Buffer.alloc((8 << 20) + 1, g.int(256)) : g.bytes(g.len(4096))];
  }
  // Garbage decoded with the admin token could, by chance, name a real run or a valid config: only field-built
  // requests (built to be refused) carry the valid token.
  if (validAdmin && label !== 'fields') md.remove('authorization');
  const mustRefuse = !(insider && method === 'FetchModel') && method !== 'Challenge';
  return { method: `${service === 'AdminService' ? 'Admin.' : ''}${method}`, path: d.path, kind, label: `${label}${validAdmin && label === 'fields' ? '/admin-token' : ''}`, md, messages, mustRefuse };
}

/** Requests the admin may send but no coordinator may accept: runs that do not exist, configs that do not parse. */
function adminRefusable(g: Gen, method: string, t: GrpcTargets): unknown {
  const nowhere = `run-${g.hex(8)}`;
  switch (method) {
    case 'StartRun': return { configJson: g.pick(['', '{', 'null', '42', '[]', '{"model":"mnist-mlp","rounds":-1}', '{"model":"mnist-mlp","rounds":1e308}', '{"model":"mnist-mlp","rounds":"x"}', '{"model":"mnist-mlp","learningRate":-1}', `{"model":"mnist-mlp","strategy":"fz-${g.hex(6)}"}`, '{"model":{"builtin":"../../x"}}']) };
    case 'EnrollAgent': return { name: g.pick(['', 'x'.repeat(200), 'a\nb']), ttlSeconds: g.num() };
    case 'RevokeAgent': return { name: `fz-${g.hex(8)}` };
    case 'FetchRunModel': return { runId: nowhere, modelVersion: g.num() };
    case 'PromoteModel': return { runId: nowhere, modelVersion: g.num(), canary: g.num(), margin: g.num(), force: g.chance(0.5) };
    // An empty run id means every run (fedge model gc): only a run that does not exist must be refused.
    case 'GcModels': return { runId: nowhere, keepLast: g.pick(['', '3', 'all']), dryRun: g.chance(0.5) };
    default: return { runId: g.pick([nowhere, '', g.str()]) };
  }
  void t;
}

const identity = (b: Buffer): Buffer => b;

/** Runs one case on `client`; resolves with its status, however the server ends it, or DEADLINE_EXCEEDED. */
export function runGrpcCase(client: grpc.Client, c: GrpcCase, deadlineMs: number): Promise<GrpcOutcome> {
  const t0 = performance.now();
  const deadline = Date.now() + deadlineMs;
  return new Promise((resolve) => {
    let data = 0;
    const done = (err: (Partial<grpc.StatusObject> & { details?: string }) | null, reply?: Buffer): void => {
      const code = err?.code ?? grpc.status.OK;
      let accepted = c.mustRefuse && code === grpc.status.OK;
      if (c.method === 'SubmitResult' && code === grpc.status.OK && reply) {
        const r = defs.AgentService.SubmitResult!.responseDeserialize(reply) as { accepted: boolean; reason: string; message: string };
        accepted = r.accepted;
        return resolve({ method: c.method, label: c.label, code, ms: performance.now() - t0, accepted, details: `${r.reason}: ${r.message}`.slice(0, 200) });
      }
      if (c.method === 'Tasks' && data > 0) accepted = true;
      resolve({ method: c.method, label: c.label, code, ms: performance.now() - t0, accepted, details: String(err?.details ?? '').slice(0, 200) });
    };
    if (c.kind === 'unary') {
      client.makeUnaryRequest(c.path, identity, identity, c.messages[0] ?? Buffer.alloc(0), c.md, { deadline }, (err, r) => done(err, r));
    } else if (c.kind === 'server') {
      const s = client.makeServerStreamRequest(c.path, identity, identity, c.messages[0] ?? Buffer.alloc(0), c.md, { deadline });
      s.on('data', () => void data++);
      s.on('error', () => undefined);
      s.on('status', (st: grpc.StatusObject) => done(st.code === grpc.status.OK ? null : st));
    } else {
      let reply: Buffer | undefined;
      const s = client.makeClientStreamRequest(c.path, identity, identity, c.md, { deadline }, (err, r) => {
        reply = r;
        done(err, reply);
      });
      s.on('error', () => undefined);
      for (const m of c.messages) if (!s.destroyed) s.write(m);
      s.end();
    }
  });
}
