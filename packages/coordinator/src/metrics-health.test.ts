/** GET /healthz and /readyz on the coordinator's metrics listener (real HTTP; a stub coordinator). */
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from '@fedge/proto';
import type { Coordinator } from './coordinator.js';
import { coordinatorReadiness, startMetricsServer, type MetricsServer } from './metrics.js';

const servers: MetricsServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

const stub = (): Coordinator & { storageFailure?: StorageError } => {
  const c = { listRuns: () => Promise.resolve([]), listAgents: () => [], registry: { records: () => [] }, storageFailure: undefined as StorageError | undefined };
  Object.defineProperty(c, 'storageError', { get: () => c.storageFailure });
  return c as unknown as Coordinator & { storageFailure?: StorageError };
};

async function get(url: string): Promise<[number, unknown]> {
  const r = await fetch(url);
  return [r.status, r.headers.get('content-type')?.includes('json') ? await r.json() : await r.text()];
}

describe('coordinator probes', () => {
  it('ready until shutdown starts or the data directory fails a write, saying which', async () => {
    const coord = stub();
    const state = { stopping: false };
    const s = await startMetricsServer(coord, { host: '127.0.0.1', port: 0 }, () => coordinatorReadiness(coord, state));
    servers.push(s);
    const base = `http://${s.address}`;
    expect(await get(`${base}/healthz`)).toEqual([200, { live: true }]);
    expect(await get(`${base}/readyz`)).toEqual([200, { ready: true }]);
    coord.storageFailure = new StorageError('/data/fedge.db', 0, 'cannot write /data/fedge.db: no space left on the device (0 bytes free)');
    const [status, body] = await get(`${base}/readyz`);
    expect(status).toBe(503);
    expect(body).toEqual({ ready: false, reason: expect.stringMatching(/^data directory failed a write: cannot write \/data\/fedge\.db: no space/) });
    state.stopping = true;
    expect(await get(`${base}/readyz`)).toEqual([503, { ready: false, reason: 'shutting down' }]);
    // Liveness does not depend on readiness, and /metrics still answers.
    expect(await get(`${base}/healthz`)).toEqual([200, { live: true }]);
    const [mStatus, metrics] = await get(`${base}/metrics`);
    expect(mStatus).toBe(200);
    expect(metrics).toMatch(/^fedge_runs\{status="running"\} 0$/m);
    expect(await get(`${base}/nope`)).toEqual([404, 'not found; metrics are at /metrics, probes at /healthz and /readyz\n']);
  });

  it('without a readiness function: the storage check alone', async () => {
    const coord = stub();
    const s = await startMetricsServer(coord, { host: '127.0.0.1', port: 0 });
    servers.push(s);
    expect(await get(`http://${s.address}/readyz`)).toEqual([200, { ready: true }]);
    coord.storageFailure = new StorageError('/data', undefined, 'read-only file system');
    expect((await get(`http://${s.address}/readyz`))[0]).toBe(503);
  });
});
