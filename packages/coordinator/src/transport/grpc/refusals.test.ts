/** Every refusal of a gRPC call reaches the client as its status code, promptly: none may leave the client waiting. */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JoinReplyMsg } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import { WATCH_HEARTBEAT_MS } from './admin-service.js';
import { startJoinedServer, unaryOutcome, type Client, type JoinedServer, type Outcome } from './rpc.fixture.js';

/** A refusal must arrive within this; the calls themselves allow 10 s, so a missing status shows as DEADLINE_EXCEEDED. */
const BOUND_MS = 3000;

let s: JoinedServer | undefined;
let coord: Coordinator;
let agents: Client;
let admin: Client;
let joined: JoinReplyMsg;

beforeAll(async () => {
  s = await startJoinedServer('fedge-refusals-', 'a1');
  ({ coord, agents, admin, joined } = s);
});

afterAll(async () => s?.close());

/** Calls a server-streaming method and resolves with the status that ended it. */
function streamOutcome(client: Client, method: string, req: unknown, md = new grpc.Metadata()): Promise<Outcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const call = client[method]!(req, md, { deadline: Date.now() + 10_000 }) as grpc.ClientReadableStream<unknown>;
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, ms: Date.now() - t0 }));
  });
}

const bearer = (token: string): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
};

describe('gRPC refusals reach the client with their status', () => {
  const cases: [string, () => Promise<Outcome>, grpc.status, RegExp][] = [
    ['Join with a wrong token', () => unaryOutcome(agents, 'Join', { name: 'x', agentId: '', joinToken: 'nope', backend: '', agentVersion: '', numExamples: 0, labels: {} }), grpc.status.UNAUTHENTICATED, /join_token/],
    ['Tasks with a malformed request', () => streamOutcome(agents, 'Tasks', { agentId: '', sessionToken: '' }), grpc.status.INVALID_ARGUMENT, /tasks/],
    ['Tasks of an unknown agent', () => streamOutcome(agents, 'Tasks', { agentId: 'agent-nobody', sessionToken: 'ab' }), grpc.status.UNAUTHENTICATED, /unknown agent/],
    ['Tasks with a wrong session token', () => streamOutcome(agents, 'Tasks', { agentId: joined.agentId, sessionToken: 'abcd' }), grpc.status.UNAUTHENTICATED, /session_token/],
    ['FetchModel with a malformed request', () => streamOutcome(agents, 'FetchModel', { agentId: '', sessionToken: '', runId: '', modelVersion: -1 }), grpc.status.INVALID_ARGUMENT, /fetch_model/],
    ['FetchModel with a wrong session token', () => streamOutcome(agents, 'FetchModel', { agentId: joined.agentId, sessionToken: 'abcd', runId: 'r1', modelVersion: 1 }), grpc.status.UNAUTHENTICATED, /session_token/],
    ['FetchModel of an unknown run', () => streamOutcome(agents, 'FetchModel', { agentId: joined.agentId, sessionToken: joined.sessionToken, runId: 'no-such-run', modelVersion: 1 }), grpc.status.NOT_FOUND, /no-such-run/],
    ['WatchRun without the admin token', () => streamOutcome(admin, 'WatchRun', { runId: 'r1' }), grpc.status.UNAUTHENTICATED, /admin token/],
    ['WatchRun of an unknown run', () => streamOutcome(admin, 'WatchRun', { runId: 'no-such-run' }, bearer('admin-tok')), grpc.status.NOT_FOUND, /no-such-run/],
    ['FetchRunModel without the admin token', () => streamOutcome(admin, 'FetchRunModel', { runId: 'r1', modelVersion: 0 }), grpc.status.UNAUTHENTICATED, /admin token/],
    ['FetchRunModel of an unknown run', () => streamOutcome(admin, 'FetchRunModel', { runId: 'no-such-run', modelVersion: 0 }, bearer('admin-tok')), grpc.status.NOT_FOUND, /no-such-run/],
    ['ListRuns with a wrong admin token', () => unaryOutcome(admin, 'ListRuns', {}, bearer('wrong')), grpc.status.UNAUTHENTICATED, /admin token/],
    ['SecAgg with a malformed request', () => unaryOutcome(agents, 'SecAgg', { agentId: '', sessionToken: '', runId: '', taskId: '', round: 0, stage: 'nope', payloadJson: '' }), grpc.status.INVALID_ARGUMENT, /secagg/],
    ['SecAgg with a wrong session token', () => unaryOutcome(agents, 'SecAgg', { agentId: joined.agentId, sessionToken: 'abcd', runId: 'r1', taskId: 't1', round: 1, stage: 'advertise', payloadJson: '{}' }), grpc.status.UNAUTHENTICATED, /session_token/],
  ];
  for (const [what, call, code, details] of cases) {
    it(what, async () => {
      const o = await call();
      expect(grpc.status[o.code], o.details).toBe(grpc.status[code]);
      expect(o.details).toMatch(details);
      expect(o.ms).toBeLessThan(BOUND_MS);
    });
  }

  it('WatchRun of a quiet run (waiting for agents) re-sends its state every WATCH_HEARTBEAT_MS', async () => {
    const run = await coord.startRun({ model: 'mnist-mlp', rounds: 1, agentsPerRound: { min: 5 } });
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer admin-tok');
    const call = admin.WatchRun!({ runId: run.id }, md) as grpc.ClientReadableStream<unknown>;
    call.on('error', () => undefined);
    let n = 0;
    call.on('data', () => n++);
    await new Promise((r) => setTimeout(r, WATCH_HEARTBEAT_MS + 1500));
    call.cancel();
    await coord.stopRun(run.id);
    expect(n).toBeGreaterThanOrEqual(2); // the state at once, then at least one heartbeat
  }, WATCH_HEARTBEAT_MS + 10_000);

  it('SecAgg for a run that is not active is refused at once, as a reply with its reason (not a held call)', async () => {
    const t0 = Date.now();
    const r = await new Promise<{ accepted: boolean; reason: string; message: string }>((resolve, reject) =>
      agents.SecAgg!({ agentId: joined.agentId, sessionToken: joined.sessionToken, runId: 'no-such-run', taskId: 't1', round: 1, stage: 'advertise', payloadJson: '{}' }, { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, res: { accepted: boolean; reason: string; message: string }) => (err ? reject(err) : resolve(res))));
    expect(r).toMatchObject({ accepted: false, reason: 'unknown_task' });
    expect(r.message).toMatch(/no-such-run/);
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
  });

  it('Tasks that is accepted sends its headers at once, so the agent can tell an open stream from a stuck one', async () => {
    const t0 = Date.now();
    const call = agents.Tasks!({ agentId: joined.agentId, sessionToken: joined.sessionToken }) as grpc.ClientReadableStream<unknown>;
    call.on('error', () => undefined);
    await new Promise<void>((resolve) => call.on('metadata', () => resolve()));
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    call.cancel();
  }, 2 * BOUND_MS);
});
