/** The Report RPC over real gRPC: accepted reports reach the agent record; every refusal is a status, promptly. */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REPORT_BODY_CHARS, type JoinReplyMsg } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import { startJoinedServer, unaryOutcome, type JoinedServer } from './rpc.fixture.js';

let s: JoinedServer | undefined;
let coord: Coordinator;
let joined: JoinReplyMsg;

beforeAll(async () => {
  s = await startJoinedServer('fedge-report-rpc-', 'rep-1');
  ({ coord, joined } = s);
});

afterAll(async () => s?.close());

async function report(req: unknown): Promise<{ code: grpc.status; details: string; bodyJson?: string; ms: number }> {
  const { reply, ...o } = await unaryOutcome<{ bodyJson: string }>(s!.agents, 'Report', req);
  return { ...o, ...(reply ? { bodyJson: reply.bodyJson } : {}) };
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
