import { afterAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import type { ResultHeaderMsg, TaskMsg } from '@fedge/proto';
import { AgentMetrics, startMetricsServer } from './metrics.js';
import type { CoordinatorConnection } from './transport/connection.js';

const servers: Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

function fakeConnection(tasks: Partial<TaskMsg>[], accept: (h: ResultHeaderMsg) => boolean | Error): CoordinatorConnection {
  return {
    join: () => Promise.resolve({ agentId: 'a1', sessionToken: 't', coordinatorVersion: 'x' } as never),
    tasks: () => ({
      cancel: () => undefined,
      async *[Symbol.asyncIterator]() {
        for (const t of tasks) yield t as TaskMsg;
      },
    }),
    fetchModel: () => Promise.resolve({ header: {} as never, bytes: new Uint8Array(1000) }),
    submit: (h) => {
      const r = accept(h);
      return r instanceof Error ? Promise.reject(r) : Promise.resolve({ accepted: r, reason: r ? '' : 'stale', message: '' });
    },
    close: () => undefined,
  };
}

const header = (kind: 'train' | 'evaluate', metrics: Record<string, number>): ResultHeaderMsg =>
  ({ kind, metrics, agentId: 'a1', sessionToken: 't', taskId: 'x', runId: 'r', round: 1, modelVersion: 1, numExamples: 10, tensors: [], totalBytes: 0, encoding: 'f32' });

describe('agent /metrics', () => {
  it('counts tasks, results, training time, bytes and reconnects through the connection, served over HTTP', async () => {
    const m = new AgentMetrics({ backend: 'wasm', name: 'edge-1', version: '0.1.0' });
    let n = 0;
    const conn = m.instrument(fakeConnection(
      [{ kind: 'train' }, { kind: 'train' }, { kind: 'evaluate' }, { kind: 'announce' }, { kind: 'train' }],
      () => (++n === 2 ? false : n === 3 ? new Error('unavailable') : true),
    ));
    await conn.join({} as never);
    await conn.join({} as never); // a reconnect
    for await (const t of conn.tasks('a1', 't')) void t;
    await conn.fetchModel({ agentId: 'a1', sessionToken: 't', runId: 'r', modelVersion: 1 });
    await conn.submit(header('train', { train_seconds: 0.7, samples_per_sec: 1234.5, train_loss: 0.42, train_accuracy: 0.88 }), new Uint8Array(400));
    await conn.submit(header('train', { train_seconds: 3 }), new Uint8Array(400)); // rejected
    await expect(conn.submit(header('evaluate', {}), new Uint8Array(10))).rejects.toThrow('unavailable');
    await conn.submit(header('evaluate', { eval_accuracy: 0.9 }), new Uint8Array(10));
    m.servedVersion = () => ({ version: '7', run: 'run-1' });

    const { server, address } = await startMetricsServer(m, '127.0.0.1', 0);
    servers.push(server);
    const res = await fetch(`http://127.0.0.1:${address.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    const value = (line: string): number => {
      const l = body.split('\n').find((x) => x.startsWith(`${line} `));
      expect(l, line).toBeDefined();
      return Number(l!.slice(line.length + 1));
    };
    expect(value('fedge_agent_info{backend="wasm",name="edge-1",version="0.1.0"}')).toBe(1);
    expect(value('fedge_agent_tasks_received_total{kind="train"}')).toBe(3);
    expect(value('fedge_agent_tasks_received_total{kind="evaluate"}')).toBe(1);
    expect(body).not.toMatch(/kind="announce"/);
    expect(value('fedge_agent_tasks_completed_total{kind="train"}')).toBe(1);
    expect(value('fedge_agent_tasks_completed_total{kind="evaluate"}')).toBe(1);
    expect(value('fedge_agent_tasks_failed_total{kind="train"}')).toBe(1);
    expect(value('fedge_agent_tasks_failed_total{kind="evaluate"}')).toBe(1);
    expect(value('fedge_agent_training_seconds_bucket{le="1"}')).toBe(1);
    expect(value('fedge_agent_training_seconds_bucket{le="5"}')).toBe(2);
    expect(value('fedge_agent_training_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(value('fedge_agent_training_seconds_count')).toBe(2);
    expect(value('fedge_agent_training_seconds_sum')).toBeCloseTo(3.7, 12);
    expect(value('fedge_agent_samples_per_second')).toBe(1234.5);
    expect(value('fedge_agent_last_train_loss')).toBe(0.42);
    expect(value('fedge_agent_last_train_accuracy')).toBe(0.88);
    expect(value('fedge_agent_bytes_sent_total')).toBe(810); // the failed submit sent nothing that counted
    expect(value('fedge_agent_bytes_received_total')).toBe(1000);
    expect(value('fedge_agent_reconnects_total')).toBe(1);
    expect(value('fedge_agent_served_model_version{run_id="run-1"}')).toBe(7);
    expect(body).toMatch(/^# TYPE fedge_agent_training_seconds histogram$/m);
    expect(body).toMatch(/^# TYPE fedge_agent_tasks_received_total counter$/m);
    expect((await fetch(`http://127.0.0.1:${address.port}/other`)).status).toBe(404);
  });

  it('leaves out gauges with no value yet and the served version without --serve', () => {
    const body = new AgentMetrics({ backend: 'cpu', name: 'x', version: '0.1.0' }).render();
    expect(body).not.toMatch(/fedge_agent_last_train_loss|fedge_agent_served_model_version|fedge_agent_samples_per_second/);
    expect(body).toMatch(/^fedge_agent_tasks_received_total\{kind="train"\} 0$/m);
    expect(body).toMatch(/^fedge_agent_reconnects_total 0$/m);
  });
});
