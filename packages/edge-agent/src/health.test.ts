/** The agent's /healthz and /readyz: readiness from the observed connection (fake clock), served over real HTTP. */
import { afterAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import type { TaskMsg } from '@fedge/proto';
import { AgentHealth, DEFAULT_RECONNECT_GRACE_MS } from './health.js';
import { AgentMetrics, startMetricsServer } from './metrics.js';
import type { CoordinatorConnection } from './transport/connection.js';

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

/** A connection whose join succeeds unless `refuse` is set and whose task stream ends when `end()` is called. */
function fakeConnection(state: { refuse?: string }): CoordinatorConnection & { end: () => void; fetched: number } {
  let end = (): void => undefined;
  const c = {
    fetched: 0,
    end: () => end(),
    join: () => (state.refuse ? Promise.reject(new Error(state.refuse)) : Promise.resolve({ agentId: 'a1', sessionToken: 't' } as never)),
    tasks: () => ({
      cancel: () => undefined,
      async *[Symbol.asyncIterator](): AsyncGenerator<TaskMsg> {
        await new Promise<void>((r) => (end = r));
      },
    }),
    fetchModel() {
      this.fetched++;
      return Promise.resolve({ header: {} as never, bytes: new Uint8Array(1) });
    },
    close: () => undefined,
  };
  return c as unknown as CoordinatorConnection & { end: () => void; fetched: number };
}

describe('AgentHealth', () => {
  it('is ready once joined, stays ready while reconnecting within the grace, and says why once it is not', async () => {
    let now = 1_000_000;
    const state: { refuse?: string } = { refuse: 'connect ECONNREFUSED 127.0.0.1:7070' };
    const health = new AgentHealth({ now: () => now });
    const conns: ReturnType<typeof fakeConnection>[] = [];
    const connect = health.observe(() => {
      const c = fakeConnection(state);
      conns.push(c);
      return c;
    });
    expect(health.readiness()).toEqual({ ready: false, reason: 'not joined to the coordinator yet' });
    await expect(connect().join({} as never)).rejects.toThrow(/ECONNREFUSED/);
    expect(health.readiness()).toEqual({ ready: false, reason: 'not joined to the coordinator yet (last error: connect ECONNREFUSED 127.0.0.1:7070)' });

    state.refuse = undefined;
    const conn = connect();
    await conn.join({} as never);
    expect(health.readiness()).toEqual({ ready: true });
    // Methods not observed pass through to the connection itself (with their `this`).
    await conn.fetchModel({} as never);
    expect(conns.at(-1)!.fetched).toBe(1);

    // The task stream ends (coordinator gone): still ready within the grace, not after.
    const consumed = (async () => {
      for await (const _ of conn.tasks('a1', 't')) void _;
    })();
    conns.at(-1)!.end();
    await consumed;
    now += DEFAULT_RECONNECT_GRACE_MS - 1;
    expect(health.readiness()).toEqual({ ready: true });
    state.refuse = 'connect ECONNREFUSED 127.0.0.1:7070';
    await expect(connect().join({} as never)).rejects.toThrow();
    now += 2;
    const r = health.readiness();
    expect(r.ready).toBe(false);
    expect(!r.ready && r.reason).toBe('disconnected from the coordinator for 60 s, over the 60 s reconnect grace (last error: connect ECONNREFUSED 127.0.0.1:7070)');

    // Back: ready again at once.
    state.refuse = undefined;
    await connect().join({} as never);
    expect(health.readiness()).toEqual({ ready: true });
  });

  it('a serving agent is not ready before a model version is loaded', async () => {
    let version: string | undefined;
    const health = new AgentHealth({ servedVersion: () => version });
    await health.observe(() => fakeConnection({}))().join({} as never);
    expect(health.readiness()).toEqual({ ready: false, reason: 'serving: no model version loaded yet' });
    version = '3';
    expect(health.readiness()).toEqual({ ready: true });
  });

  it('answers GET /healthz and /readyz on the metrics listener (503 with the reason), /metrics unchanged', async () => {
    const health = new AgentHealth();
    const { server, address } = await startMetricsServer(new AgentMetrics({ backend: 'cpu', name: 'a', version: '0' }), '127.0.0.1', 0, () => health.readiness());
    servers.push(server);
    const base = `http://127.0.0.1:${address.port}`;
    const live = await fetch(`${base}/healthz`);
    expect([live.status, await live.json()]).toEqual([200, { live: true }]);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.headers.get('content-type')).toBe('application/json');
    expect([notReady.status, await notReady.json()]).toEqual([503, { ready: false, reason: 'not joined to the coordinator yet' }]);
    await health.observe(() => fakeConnection({}))().join({} as never);
    const ready = await fetch(`${base}/readyz?verbose=1`);
    expect([ready.status, await ready.json()]).toEqual([200, { ready: true }]);
    expect((await fetch(`${base}/readyz`, { method: 'POST' })).status).toBe(405);
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^fedge_agent_info\{/m);
  });
});
