/** The agent's gRPC calls end within a bound whatever the coordinator does: a refusal carries its code, silence times out. */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_OPTIONS, loadServices, type ResultHeaderMsg } from '@fedge/proto';
import { GrpcConnection } from './grpc-connection.js';

/** What the fake coordinator does with each call. */
let mode: 'silent' | 'refuse' = 'silent';
let server: grpc.Server;
let address: string;
const held: { end(): void }[] = [];

beforeAll(async () => {
  server = new grpc.Server(SERVER_OPTIONS);
  const refusal = { code: grpc.status.UNAUTHENTICATED, details: 'session_token: invalid for this agent; join again' };
  server.addService(loadServices().AgentService.service, {
    Join: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { agentId: 'agent-1', sessionToken: 'ab', coordinatorVersion: 'fake' }),
    Tasks: (call: grpc.ServerWritableStream<unknown, unknown>) => (mode === 'refuse' ? call.emit('error', refusal) : held.push(call)),
    FetchModel: (call: grpc.ServerWritableStream<unknown, unknown>) => (mode === 'refuse' ? call.emit('error', refusal) : held.push(call)),
    SubmitResult: (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      call.on('data', () => undefined);
      if (mode === 'refuse') cb(refusal);
      else held.push({ end: () => cb(null, { accepted: false, reason: 'internal', message: 'test over' }) });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(() => {
  for (const h of held) h.end();
  server.forceShutdown();
});

const header: ResultHeaderMsg = {
  agentId: 'agent-1', sessionToken: 'ab', taskId: 't', runId: 'r', round: 1, modelVersion: 0, kind: 'train',
  numExamples: 1, tensors: [], totalBytes: 4, encoding: 'float32-delta', metrics: {},
};

async function timed<T>(p: Promise<T>): Promise<{ err: { code?: string; message: string }; ms: number }> {
  const t0 = Date.now();
  try {
    await p;
  } catch (err) {
    return { err: err as Error & { code?: string }, ms: Date.now() - t0 };
  }
  throw new Error('the call succeeded');
}

const drain = async (conn: GrpcConnection): Promise<void> => {
  for await (const _ of conn.tasks('agent-1', 'ab')) void _;
};

describe('GrpcConnection bounds', () => {
  const timeouts = { tasksOpenMs: 400, fetchIdleMs: 400, submitIdleMs: 400 };

  it('a task stream the coordinator neither opens nor refuses is given up', async () => {
    mode = 'silent';
    const conn = new GrpcConnection(address, undefined, timeouts);
    const { err, ms } = await timed(drain(conn));
    expect(err.message).toMatch(/task stream: the coordinator neither opened nor refused it within 0.4 s/);
    expect(ms).toBeLessThan(2000);
    conn.close();
  });

  it('a silent model download and a silent upload are given up', async () => {
    mode = 'silent';
    const conn = new GrpcConnection(address, undefined, timeouts);
    const fetch = await timed(conn.fetchModel({ agentId: 'agent-1', sessionToken: 'ab', runId: 'r', modelVersion: 1 }));
    expect(fetch.err.message).toMatch(/model download: nothing from the coordinator for 0.4 s/);
    expect(fetch.ms).toBeLessThan(2000);
    const submit = await timed(conn.submit(header, new Uint8Array(4)));
    expect(submit.err.message).toMatch(/upload: nothing from the coordinator for 0.4 s/);
    expect(submit.ms).toBeLessThan(2000);
    conn.close();
  });

  it('a refused session is E_AUTH on every call, so the agent knows to join again', async () => {
    mode = 'refuse';
    const conn = new GrpcConnection(address, undefined, timeouts);
    const calls = [() => drain(conn), () => conn.fetchModel({ agentId: 'agent-1', sessionToken: 'ab', runId: 'r', modelVersion: 1 }), () => conn.submit(header, new Uint8Array(4))];
    for (const call of calls) {
      const { err, ms } = await timed(call());
      expect(err.code).toBe('E_AUTH');
      expect(err.message).toMatch(/session_token/);
      expect(ms).toBeLessThan(2000);
    }
    conn.close();
  });
});
