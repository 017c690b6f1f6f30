/** The Report RPC over real gRPC: accepted reports reach the agent record; every refusal is a status, promptly. */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANNEL_OPTIONS, MAX_REPORT_BODY_CHARS, loadServices, type JoinReplyMsg } from '@fedge/proto';
import { Coordinator } from '../../coordinator.js';
import { startGrpcServer, type GrpcServerHandle } from './server.js';

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
let coord: Coordinator;
let server: GrpcServerHandle;
let agents: Client;
let joined: JoinReplyMsg;

beforeAll(async () => {
  coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-report-rpc-')), joinToken: 'join-tok' });
  server = await startGrpcServer(coord, { host: '127.0.0.1', port: 0 }, 'admin-tok');
  agents = new (loadServices().AgentService)(server.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as Client;
  joined = await new Promise<JoinReplyMsg>((resolve, reject) =>
    agents.Join!({ name: 'rep-1', agentId: '', joinToken: 'join-tok', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {} },
      (err: grpc.ServiceError | null, r: JoinReplyMsg) => (err ? reject(err) : resolve(r))));
});

afterAll(async () => {
  agents?.close();
  await server?.close();
  await coord?.close();
});

function report(req: unknown): Promise<{ code: grpc.status; details: string; bodyJson?: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) =>
    agents.Report!(req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, r?: { bodyJson: string }) =>
      resolve({ code: err?.code ?? grpc.status.OK, details: err?.details ?? '', ms: Date.now() - t0, ...(r ? { bodyJson: r.bodyJson } : {}) })));
}

describe('Report RPC', () => {
  it('records the served version and answers with a reply body', async () => {
    const r = await report({ agentId: joined.agentId, sessionToken: joined.sessionToken, bodyJson: JSON.stringify({ served: { runId: 'run-abc', version: 3 } }) });
    expect(r.code, r.details).toBe(grpc.status.OK);
    expect(JSON.parse(r.bodyJson!)).toEqual({});
    expect(coord.listAgents().find((a) => a.id === joined.agentId)).toMatchObject({ servedRun: 'run-abc', servedVersion: 3 });
  });

  it('refusals end with a status naming the field: bad session, malformed, oversized', async () => {
    const cases: [unknown, grpc.status, RegExp][] = [
      [{ agentId: joined.agentId, sessionToken: 'ab'.repeat(24), bodyJson: '{}' }, grpc.status.UNAUTHENTICATED, /session_token/],
      [{ agentId: 'agent-nobody', sessionToken: joined.sessionToken, bodyJson: '{}' }, grpc.status.UNAUTHENTICATED, /unknown agent/],
      [{ agentId: joined.agentId, sessionToken: joined.sessionToken, bodyJson: '[1,2' }, grpc.status.INVALID_ARGUMENT, /body_json: not valid JSON/],
      [{ agentId: joined.agentId, sessionToken: joined.sessionToken, bodyJson: '' }, grpc.status.INVALID_ARGUMENT, /report\.bodyJson/],
      [{ agentId: joined.agentId, sessionToken: joined.sessionToken, bodyJson: JSON.stringify({ served: { runId: 'run-abc' } }) }, grpc.status.INVALID_ARGUMENT, /body_json\.served\.version/],
      [{ agentId: joined.agentId, sessionToken: joined.sessionToken, bodyJson: 'x'.repeat(MAX_REPORT_BODY_CHARS + 1) }, grpc.status.INVALID_ARGUMENT, /larger than/],
    ];
    for (const [req, code, details] of cases) {
      const r = await report(req);
      expect(r.code, r.details).toBe(code);
      expect(r.details).toMatch(details);
      expect(r.ms).toBeLessThan(3000);
    }
    expect(coord.listAgents().find((a) => a.id === joined.agentId)!.servedVersion).toBe(3);
  });
});
