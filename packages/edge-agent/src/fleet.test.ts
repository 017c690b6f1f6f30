/** SimulatedFleet and the echo agents' shared state: names, joins counted per agent, a fixed delta. */
import { describe, expect, it } from 'vitest';
import type { JoinRequestMsg, TaskMsg } from '@fedge/proto';
import { SimulatedFleet } from './fleet.js';
import { EchoExecutor, EchoShared } from './echo-executor.js';
import type { CoordinatorConnection, TaskStream } from './transport/connection.js';
import type { LocalData } from './data.js';

const table = (n: number) => ({ n, columns: [], targets: [], format: 'echo', fingerprint: '0'.repeat(64), source: 'echo' });
const data: LocalData = { train: table(600), holdout: table(60), description: 'echo', profile: { format: 'echo', n: 600, columns: [], targets: [], fingerprint: '0'.repeat(64) } };

/** A coordinator stand-in: joins succeed, task streams stay open and empty until cancelled. */
function fakeConnection(joins: JoinRequestMsg[]): CoordinatorConnection {
  const never = (): TaskStream => {
    let cancel: () => void = () => undefined;
    const ended = new Promise<void>((r) => (cancel = r));
    return {
      cancel: () => cancel(),
      async *[Symbol.asyncIterator](): AsyncGenerator<TaskMsg> {
        await ended;
      },
    };
  };
  return {
    join: async (req) => (joins.push(req), { agentId: `agent-${req.name}`, sessionToken: 'ab', agentSecret: '', modelSigningKey: '', coordinatorVersion: 'test' } as never),
    challenge: () => Promise.reject(new Error('not used')),
    tasks: never,
    fetchModel: () => Promise.reject(new Error('not used')),
    submit: () => Promise.reject(new Error('not used')),
    secagg: () => Promise.reject(new Error('not used')),
    report: async () => ({ bodyJson: '' }),
    close: () => undefined,
  } as CoordinatorConnection;
}

describe('SimulatedFleet', () => {
  it('names sort in index order', () => {
    expect(SimulatedFleet.nameOf('sim', 7, 1000)).toBe('sim-007');
    expect(SimulatedFleet.nameOf('sim', 0, 1)).toBe('sim-0');
    expect(SimulatedFleet.nameOf('sim', 12, 13)).toBe('sim-12');
  });

  it('each virtual agent joins once with its own name and connection; stop() ends them all', async () => {
    const joins: JoinRequestMsg[] = [];
    let connections = 0;
    const fleet = new SimulatedFleet({
      count: 25, namePrefix: 'v', backend: 'echo', startRate: 1000, seed: 1,
      connect: () => (connections++, fakeConnection(joins)),
      data: async () => data,
      executor: () => new EchoExecutor(data, new EchoShared()),
    });
    await fleet.start();
    await fleet.waitConnected(25, AbortSignal.timeout(5_000)).catch((err: unknown) => { throw new Error(`${String(err)} ${JSON.stringify(fleet.status)}`); });
    expect(fleet.status).toMatchObject({ started: 25, connected: 25, joins: 25, joinFailures: 0 });
    expect(new Set(joins.map((j) => j.name)).size).toBe(25);
    expect(joins.every((j) => j.backend === 'echo' && j.numExamples === 600 && j.dataProfileJson === '')).toBe(true);
    expect(connections).toBe(25);
    await fleet.stop();
    expect(fleet.status.connected).toBe(0);
  });
});

describe('EchoShared', () => {
  it('the delta is deterministic, small, of the model size, and a fresh copy each time', () => {
    const s = new EchoShared();
    const a = s.deltaOf(1000);
    const b = s.deltaOf(1000);
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
    expect(a.length).toBe(1000);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(Math.fround(1e-3));
    expect(a.some((x) => x !== 0)).toBe(true);
    a[0] = 42;
    expect(s.deltaOf(1000)[0]).not.toBe(42);
  });
});
