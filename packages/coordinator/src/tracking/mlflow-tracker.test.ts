import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { RoundRecord, RunRecord } from '../store/store.js';
import { MlflowTracker } from './mlflow-tracker.js';
import { roundMetricValues } from '../cli/tracking-export.js';

/** A stand-in for the tracking server's REST API that records what it is sent (the e2e test uses the real one). */
function fakeMlflow(): { server: Server; calls: { path: string; body: Record<string, unknown>; auth?: string }[]; refuse: Set<string> } {
  const calls: { path: string; body: Record<string, unknown>; auth?: string }[] = [];
  const refuse = new Set<string>();
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      calls.push({ path, body: text && req.headers['content-type'] === 'application/json' ? (JSON.parse(text) as Record<string, unknown>) : {}, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
      const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (refuse.has(path)) return reply(400, { error_code: 'INVALID_PARAMETER_VALUE', message: 'refused by the test' });
      if (path.endsWith('/experiments/get-by-name')) return reply(404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'no' });
      if (path.endsWith('/experiments/create')) return reply(200, { experiment_id: '7' });
      if (path.endsWith('/runs/search')) return reply(200, {});
      if (path.endsWith('/runs/create')) return reply(200, { run: { info: { run_id: 'r1', artifact_uri: 'mlflow-artifacts:/7/r1/artifacts' } } });
      return reply(200, {});
    });
  });
  return { server, calls, refuse };
}

function logCapture() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); cb(); } }));
  return { log, warnings: () => lines.filter((l) => l.level === 40), lines };
}

const round = (n: number): RoundRecord => ({ round: n, version: n, status: 'completed', seconds: 1, participants: [{ agentId: 'a', name: 'a', outcome: 'completed' }], trainLoss: 1 / n, bytesSent: 10 * n, endedAt: new Date(1_700_000_000_000 + n * 1000).toISOString() }) as unknown as RoundRecord;
const run = (rounds: number, status: RunRecord['status'] = 'running'): RunRecord =>
  ({ id: 'run-1', config: { model: 'mnist-mlp', rounds: 3, strategy: { name: 'fedavg' } }, status, createdAt: new Date().toISOString(), round: rounds, modelVersion: rounds, rounds: Array.from({ length: rounds }, (_, i) => round(i + 1)), versions: [], ...(status !== 'running' ? { endedAt: new Date().toISOString() } : {}) }) as unknown as RunRecord;

const listen = (s: Server, port = 0) => new Promise<number>((r) => s.listen(port, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
let servers: Server[] = [];
afterEach(() => {
  for (const s of servers) s.close();
  servers = [];
});

describe('MlflowTracker', () => {
  it('buffers while the server is down (one warning), then delivers everything in order when it answers', async () => {
    const fake = fakeMlflow();
    servers.push(fake.server);
    const probe = createServer();
    const port = await listen(probe);
    await new Promise((r) => probe.close(r)); // a port nobody listens on, until the fake takes it
    const { log, warnings, lines } = logCapture();
    const t = new MlflowTracker({ uri: `http://127.0.0.1:${port}`, experiment: 'e' }, { log, backoff: { initialMs: 20, maxMs: 80 } });
    t.start(run(0));
    for (let n = 1; n <= 3; n++) t.observe(run(n));
    await new Promise((r) => setTimeout(r, 300)); // several failed retries
    expect(warnings().map((w) => w.msg)).toEqual([expect.stringMatching(/MLflow tracking server unreachable/)]);
    expect(t.delivered).toBe(0);
    await listen(fake.server, port);
    t.end(run(3, 'completed'), async () => [{ path: 'model.onnx', bytes: new Uint8Array([1, 2, 3]) }]);
    expect(await t.flush(5_000)).toBe(true);
    expect(warnings()).toHaveLength(1);
    expect(lines.some((l) => /answers again/.test(l.msg))).toBe(true);
    const paths = fake.calls.map((c) => c.path.replace('/api/2.0/', ''));
    expect(paths.slice(0, 4)).toEqual(['mlflow/experiments/get-by-name', 'mlflow/experiments/create', 'mlflow/runs/search', 'mlflow/runs/create']);
    expect(paths).toContain('mlflow-artifacts/artifacts/7/r1/artifacts/model.onnx');
    expect(paths[paths.length - 1]).toBe('mlflow/runs/update');
    const metrics = fake.calls.flatMap((c) => (c.body['metrics'] as { key: string; step: number }[] | undefined) ?? []);
    expect(metrics.filter((m) => m.key === 'train_loss').map((m) => m.step)).toEqual([1, 2, 3]);
    const params = fake.calls.flatMap((c) => (c.body['params'] as { key: string; value: string }[] | undefined) ?? []);
    expect(params).toEqual(expect.arrayContaining([{ key: 'model', value: 'mnist-mlp' }, { key: 'rounds', value: '3' }]));
    expect(fake.calls.at(-1)!.body).toMatchObject({ run_id: 'r1', status: 'FINISHED' });
    t.close();
  });

  it('keeps at most maxBufferedMetrics while down (oldest dropped, counted); a refused update is dropped with a warning', async () => {
    const s = createServer();
    const port = await listen(s);
    await new Promise((r) => s.close(r));
    const { log } = logCapture();
    const t = new MlflowTracker({ uri: `http://127.0.0.1:${port}`, experiment: 'e' }, { log, maxBufferedMetrics: 5, backoff: { initialMs: 1000, maxMs: 1000 } });
    t.start(run(0));
    t.observe(run(4));
    const perRound = Object.keys(roundMetricValues(round(1))).length; // train_loss, participants, bytes_sent, ...
    expect(perRound).toBeGreaterThan(5);
    expect(t.dropped.metrics).toBe(4 * perRound - 5);
    t.close();

    const fake = fakeMlflow();
    servers.push(fake.server);
    fake.refuse.add('/api/2.0/mlflow/runs/log-batch');
    const cap = logCapture();
    const u = new MlflowTracker({ uri: `http://127.0.0.1:${await listen(fake.server)}`, experiment: 'e' }, { log: cap.log });
    u.start(run(2));
    expect(await u.flush(5_000)).toBe(true);
    expect(cap.warnings().map((w) => w.msg)).toEqual([expect.stringMatching(/refused an update; dropped it/)]);
    expect(u.dropped.refused).toBeGreaterThan(0);
    u.close();
  });

  it('sends credentials from the URL as basic auth, and keeps them out of logs and params', async () => {
    const fake = fakeMlflow();
    servers.push(fake.server);
    const port = await listen(fake.server);
    const cap = logCapture();
    const r = run(1);
    (r.config as unknown as Record<string, unknown>)['tracking'] = { mlflow: `http://fedge:s3cret@127.0.0.1:${port}` };
    const t = new MlflowTracker({ uri: `http://fedge:s3cret@127.0.0.1:${port}`, experiment: 'e' }, { log: cap.log });
    t.start(r);
    expect(await t.flush(5_000)).toBe(true);
    expect(fake.calls.length).toBeGreaterThan(4);
    for (const c of fake.calls) expect(c.auth).toBe(`Basic ${Buffer.from('fedge:s3cret').toString('base64')}`);
    expect(JSON.stringify(cap.lines)).not.toContain('s3cret');
    expect(JSON.stringify(fake.calls.map((c) => c.body))).not.toContain('s3cret');
    t.close();
  });
});
