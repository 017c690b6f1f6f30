/** The CLI's streams end within a bound when the coordinator goes silent (they have no deadline: a run may last days). */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RevokedError, SERVER_OPTIONS, StorageError, loadServices } from '@fedge/proto';
import { AdminClient } from './admin-client.js';
import { toServiceError } from '../transport/grpc/errors.js';

let server: grpc.Server;
let address: string;
const held: grpc.ServerWritableStream<unknown, unknown>[] = [];

beforeAll(async () => {
  server = new grpc.Server(SERVER_OPTIONS);
  // A coordinator that accepts both streams and then never sends anything.
  server.addService(loadServices().AdminService.service, {
    WatchRun: (call: grpc.ServerWritableStream<unknown, unknown>) => held.push(call),
    FetchRunModel: (call: grpc.ServerWritableStream<unknown, unknown>) => held.push(call),
    // Refusals as the coordinator's handlers send them (toServiceError).
    StartRun: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(toServiceError(new StorageError('/data/fedge.db', 0, 'cannot write /data/fedge.db: 0 B free there')) as grpc.ServiceError),
    StopRun: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(toServiceError(new RevokedError('agent a1 is revoked')) as grpc.ServiceError),
    ListRuns: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(toServiceError(new Error('boom')) as grpc.ServiceError),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(() => {
  for (const c of held) c.end();
  server.forceShutdown();
});

describe('AdminClient idle timeout', () => {
  for (const [what, call] of [
    ['watching the run', (c: AdminClient) => c.watchRun('r1', () => undefined)],
    ['downloading the model', (c: AdminClient) => c.fetchRunModel('r1')],
  ] as const) {
    it(`gives up ${what} after the coordinator is silent for idleMs`, async () => {
      const c = new AdminClient(address, undefined, {});
      c.idleMs = 300;
      const t0 = Date.now();
      await expect(call(c)).rejects.toMatchObject({ code: 'E_UNAVAILABLE', message: expect.stringMatching(new RegExp(`${what}: nothing from the coordinator at ${address} for 0.3 s`)) });
      expect(Date.now() - t0).toBeLessThan(2000);
      c.close();
    });
  }
});

describe('AdminClient refusals', () => {
  it("reports the coordinator's own error code (its trailer), not only the gRPC status", async () => {
    const c = new AdminClient(address, undefined, {});
    await expect(c.startRun({})).rejects.toMatchObject({ code: 'E_STORAGE', message: expect.stringContaining('0 B free') });
    await expect(c.stopRun('r1')).rejects.toMatchObject({ code: 'E_REVOKED' });
    // A plain error has no fedge code: INTERNAL maps to the generic one.
    await expect(c.listRuns()).rejects.toMatchObject({ code: 'E_COORDINATOR', message: 'boom' });
    c.close();
  });
});
