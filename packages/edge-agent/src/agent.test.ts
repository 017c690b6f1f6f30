/** The agent daemon's reaction to a refused session: it leaves the session and joins again instead of going on with it. */
import { describe, expect, it } from 'vitest';
import { FedgeError, SERVES_LABEL, type JoinRequestMsg, type TaskMsg } from '@fedge/proto';
import type { GlobalModelServer } from './serving/global-server.js';
import { Agent } from './agent.js';
import type { CoordinatorConnection, TaskStream } from './transport/connection.js';
import type { LocalData } from './data.js';
import type { TaskExecutor } from './executor.js';

const task: TaskMsg = { taskId: 't1', runId: 'r1', round: 1, modelVersion: 1, kind: 'train', modelSha256: 'x', modelBytes: 4, deadlineUnixMs: 0 } as TaskMsg;

/** A coordinator that sends one train task per session and refuses the first session's model download. */
function fakeCoordinator(): { connect: () => CoordinatorConnection; joins: JoinRequestMsg[]; fetches: string[] } {
  const joins: JoinRequestMsg[] = [];
  const fetches: string[] = [];
  const connect = (): CoordinatorConnection => ({
    join: async (req) => {
      joins.push(req);
      return { agentId: 'agent-1', sessionToken: `s${joins.length}`, coordinatorVersion: 'fake' };
    },
    challenge: async () => ({ nonce: '', expiresUnixMs: 0 }),
    tasks: (): TaskStream => {
      let cancel: () => void = () => undefined;
      const cancelled = new Promise<void>((r) => (cancel = r));
      return {
        cancel: () => cancel(),
        async *[Symbol.asyncIterator]() {
          yield task;
          await cancelled;
        },
      };
    },
    fetchModel: async (req) => {
      fetches.push(req.sessionToken);
      if (req.sessionToken === 's1') throw new FedgeError('E_AUTH', 'session_token: invalid for this agent; join again');
      return new Promise(() => undefined); // the second session's download never ends: the test is over by then
    },
    submit: async () => ({ accepted: true, reason: '', message: '' }),
    close: () => undefined,
  });
  return { connect, joins, fetches };
}

describe('Agent', () => {
  it('joins again at once when the coordinator refuses its session mid-task (E_AUTH), presenting its agent id', async () => {
    const c = fakeCoordinator();
    const executor = {
      trust: { onJoin: () => undefined },
      run: async (t: TaskMsg, conn: CoordinatorConnection, s: { agentId: string; sessionToken: string }) => {
        await conn.fetchModel({ agentId: s.agentId, sessionToken: s.sessionToken, runId: t.runId, modelVersion: t.modelVersion });
        throw new Error('unreachable');
      },
      close: async () => undefined,
    } as unknown as TaskExecutor;
    const data = { train: { n: 10 }, profile: undefined } as unknown as LocalData;
    const agent = new Agent(c.connect, data, { name: 'a', backend: 'cpu', executor, minBackoffMs: 10, maxBackoffMs: 20 });
    void agent.runForever();
    const t0 = Date.now();
    while (c.fetches.length < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
    agent.stop();
    expect(c.joins.length).toBe(2);
    expect(c.joins[1]!.agentId).toBe('agent-1');
    expect(c.fetches).toEqual(['s1', 's2']);
  });

  it('after a join under its id is refused (E_AUTH), joins by name instead of retrying the refused id forever', async () => {
    const joins: JoinRequestMsg[] = [];
    const connect = (): CoordinatorConnection => ({
      join: async (req) => {
        joins.push(req);
        // The first rejoin by id is refused, as when another join took the id under this agent's name.
        if (req.agentId && joins.filter((j) => j.agentId).length === 1) throw new FedgeError('E_AUTH', `agent_secret: missing or wrong for agent_id "${req.agentId}"`);
        return { agentId: 'agent-1', sessionToken: `s${joins.length}`, coordinatorVersion: 'fake', agentSecret: 'sec' };
      },
      challenge: async () => ({ nonce: '', expiresUnixMs: 0 }),
      // Every session's task stream ends at once, so the agent keeps joining again.
      tasks: (): TaskStream => ({ cancel: () => undefined, async *[Symbol.asyncIterator]() {} }),
      fetchModel: async () => new Promise(() => undefined),
      submit: async () => ({ accepted: true, reason: '', message: '' }),
      close: () => undefined,
    });
    const executor = { trust: { onJoin: () => undefined }, close: async () => undefined } as unknown as TaskExecutor;
    const data = { train: { n: 10 }, profile: undefined } as unknown as LocalData;
    const agent = new Agent(connect, data, { name: 'a', backend: 'cpu', executor, minBackoffMs: 10, maxBackoffMs: 20 });
    void agent.runForever();
    const t0 = Date.now();
    while (joins.length < 4 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
    agent.stop();
    // First join; rejoin with id and secret (refused); by name; then with the new id and secret again.
    expect(joins.slice(0, 4).map((j) => [j.agentId, j.agentSecret])).toEqual([['', ''], ['agent-1', 'sec'], ['', ''], ['agent-1', 'sec']]);
  });

  it('says at join that it serves no model (so it is sent no announcements) unless it serves, keeping its own labels', async () => {
    const labelsOf = async (serving: boolean): Promise<Record<string, string>> => {
      const c = fakeCoordinator();
      const executor = { trust: { onJoin: () => undefined }, run: () => new Promise(() => undefined), close: async () => undefined } as unknown as TaskExecutor;
      const data = { train: { n: 10 }, profile: undefined } as unknown as LocalData;
      const agent = new Agent(c.connect, data, { name: 'a', backend: 'cpu', executor, labels: { zone: 'b' }, ...(serving ? { serving: {} as GlobalModelServer } : {}) });
      void agent.runForever();
      const t0 = Date.now();
      while (c.joins.length < 1 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      agent.stop();
      return c.joins[0]!.labels;
    };
    expect(await labelsOf(false)).toEqual({ zone: 'b', [SERVES_LABEL]: 'false' });
    expect(await labelsOf(true)).toEqual({ zone: 'b' });
  });
});
