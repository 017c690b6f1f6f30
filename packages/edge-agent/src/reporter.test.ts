/** The agent's status reporter: a report on attach, on poke and every heartbeat, one-shot sections, replies to listeners. */
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentReportMsg, ReportReplyMsg } from '@fedge/proto';
import type { CoordinatorConnection } from './transport/connection.js';
import { Reporter } from './reporter.js';

function fakeConn(reply = '{}', fail?: Error): { conn: CoordinatorConnection; sent: AgentReportMsg[] } {
  const sent: AgentReportMsg[] = [];
  const conn = {
    report: async (req: AgentReportMsg): Promise<ReportReplyMsg> => {
      sent.push(req);
      if (fail) throw fail;
      return { bodyJson: reply };
    },
  } as unknown as CoordinatorConnection;
  return { conn, sent };
}

const session = { agentId: 'agent-1', sessionToken: 'ab'.repeat(24) };
let r: Reporter | undefined;
afterEach(() => r?.detach());

describe('Reporter', () => {
  it('reports on attach and on every poke, in order, with the providers\' current sections', async () => {
    let served: { runId: string; version: number } | undefined;
    r = new Reporter(60_000).section('served', () => served);
    const { conn, sent } = fakeConn();
    r.attach(conn, session);
    await r.flush();
    served = { runId: 'run-1', version: 2 };
    r.poke();
    r.poke(); // coalesced with the one before: the body is read when it is sent
    await r.flush();
    served = { runId: 'run-1', version: 3 };
    r.poke();
    await r.flush();
    expect(sent.map((s) => JSON.parse(s.bodyJson))).toEqual([{}, { served: { runId: 'run-1', version: 2 } }, { served: { runId: 'run-1', version: 3 } }]);
    expect(sent.every((s) => s.agentId === 'agent-1' && s.sessionToken === session.sessionToken)).toBe(true);
    expect(r.sent).toBe(3);
  });

  it('sends a heartbeat every interval, and nothing once detached', async () => {
    r = new Reporter(50).section('served', () => ({ runId: 'run-1', version: 1 }));
    const { conn, sent } = fakeConn();
    r.attach(conn, session);
    await new Promise((res) => setTimeout(res, 280));
    r.detach();
    const n = sent.length;
    expect(n).toBeGreaterThanOrEqual(4);
    await new Promise((res) => setTimeout(res, 150));
    expect(sent.length).toBe(n);
  });

  it('skips heartbeats with nothing to say once an empty report was accepted on the session; pokes, a new session and a change still report', async () => {
    let served: { runId: string; version: number } | undefined;
    r = new Reporter(40).section('served', () => served);
    const first = fakeConn();
    r.attach(first.conn, session);
    await new Promise((res) => setTimeout(res, 220));
    await r.flush();
    expect(first.sent.map((s) => s.bodyJson)).toEqual(['{}']); // the attach's report only, no empty heartbeats
    r.poke();
    await r.flush();
    expect(first.sent.length).toBe(2); // a poke goes out whatever it holds
    served = { runId: 'run-1', version: 2 };
    await new Promise((res) => setTimeout(res, 200));
    await r.flush();
    const serving = first.sent.slice(2).map((s) => s.bodyJson);
    expect(serving.length).toBeGreaterThanOrEqual(2); // a non-empty body heartbeats (its reply may carry news)
    expect(new Set(serving)).toEqual(new Set([JSON.stringify({ served })]));
    served = undefined;
    await new Promise((res) => setTimeout(res, 160));
    await r.flush();
    expect(first.sent.slice(2 + serving.length).map((s) => s.bodyJson).slice(0, 2)).toEqual(['{}']); // back to empty: said once
    // A failed empty report is not taken as accepted: the next heartbeat tries again.
    const failing = fakeConn('{}', Object.assign(new Error('unavailable'), { code: 'E_CONNECTION' }));
    r.attach(failing.conn, session);
    await new Promise((res) => setTimeout(res, 150));
    await r.flush();
    expect(failing.sent.length).toBeGreaterThanOrEqual(3);
    const second = fakeConn();
    r.attach(second.conn, session);
    await r.flush();
    expect(second.sent.map((s) => s.bodyJson)).toEqual(['{}']); // a new session: reported on attach
  });

  it('keeps a one-shot section until a report carrying it is accepted', async () => {
    r = new Reporter(60_000);
    const failing = fakeConn('{}', Object.assign(new Error('unavailable'), { code: 'E_CONNECTION' }));
    r.attach(failing.conn, session);
    r.once('profile', { runId: 'run-1', round: 1, profile: { examples: 3, features: [{ feature: 'x', counts: [1, 2] }] } });
    await r.flush();
    expect(JSON.parse(failing.sent.at(-1)!.bodyJson).profile.round).toBe(1);
    const ok = fakeConn();
    r.attach(ok.conn, session);
    await r.flush();
    r.poke();
    await r.flush();
    expect(ok.sent.map((s) => Object.keys(JSON.parse(s.bodyJson)))).toEqual([['profile'], []]);
  });

  it('hands the coordinator\'s reply to listeners; a provider\'s invalid section is not sent', async () => {
    r = new Reporter(60_000).section('served', () => ({ runId: 'run 1', version: -1 }));
    const { conn, sent } = fakeConn(JSON.stringify({ fleetReference: { runId: 'run-1', key: 'k1', agents: 2, profile: { examples: 5, features: [] } } }));
    r.attach(conn, session);
    await r.flush();
    expect(sent).toEqual([]);
    const r2 = new Reporter(60_000);
    const replies: unknown[] = [];
    r2.onReply((b) => replies.push(b.fleetReference?.agents));
    r2.attach(conn, session);
    await r2.flush();
    r2.detach();
    expect(replies).toEqual([2]);
  });
});
