/**
 * End to end: a self-healing canary survives a coordinator crash. The coordinator is killed (-9) in the middle of the
 * canary's window and restarted on the same data directory and port; it re-arms the canary from the deadline stored in
 * the run record, the agents reconnect and keep the A/B split, and the rollout completes at the original deadline
 * (not a fresh window from the restart).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadMnist } from '@fedge/ml';
import { FEDGE, fedge, freePort, killAll, lastJson, startAgent, startProcess } from './harness.js';

afterAll(() => killAll());

const { test } = loadMnist();
const body = (i: number): string => {
  const from = (i * 4) % (test.n - 4);
  return JSON.stringify({ inputs: [{ name: 'input', shape: [4, 784], datatype: 'FP32', data: Array.from(test.x.subarray(from * 784, (from + 4) * 784)) }] });
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Promotion { version?: number; canary?: { version: number; auto?: { stable: number; deadline: string } }; lastCanary?: { version: number; outcome: string; reason: string; at: string } }

describe('self-healing canary across a coordinator restart', () => {
  it('kill -9 mid-window: the restarted coordinator re-arms the canary and completes it at the stored deadline', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-canary-restart-'));
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const serve = () => startProcess(FEDGE, ['serve', '--listen', address, '--data-dir', dataDir, '--no-mqtt']);
    let coord = serve();
    await coord.waitFor(/coordinator ready on/);
    const ports = await Promise.all([0, 1].map(() => freePort()));
    const agents = [0, 1].map((i) => startAgent(address, ['--name', `r-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '4', '--serve', `127.0.0.1:${ports[i]}`, '--serve-name', 'mnist']));
    await Promise.all(agents.map((a) => a.waitFor(/inference server listening/)));
    const c = ['--coordinator', address, '--format', 'json'];
    const started = await fedge(['run', 'start', ...c, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '2', '--epochs', '1', '--lr', '0.1', '--watch']);
    expect(started.code, started.stderr).toBe(0);
    const runId = lastJson<{ id: string }>(started.stdout).id;
    const m = (args: string[]) => fedge(['model', ...args, '--run', runId, ...c]);
    const served = async (i: number, id: string): Promise<string | null> => {
      try {
        const res = await fetch(`http://127.0.0.1:${ports[i]}/v2/models/mnist/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: body(Number(id.slice(2)) || 0) });
        await res.arrayBuffer();
        return res.headers.get('x-model-version');
      } catch {
        return null;
      }
    };
    const until = async (what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> => {
      const t0 = Date.now();
      while (!(await fn())) {
        if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
        await sleep(250);
      }
    };
    expect((await m(['promote', '2'])).code).toBe(0);
    await until('agents serving 2', async () => (await served(0, 'a')) === '2' && (await served(1, 'a')) === '2');

    const r = await m(['promote', '1', '--canary', '0.5', '--auto', '--window', '15s', '--min-requests', '10', '--max-latency-ratio', '10', '--force']);
    expect(r.code, r.stderr).toBe(0);
    const deadline = Date.parse(lastJson<Promotion>(r.stdout).canary!.auto!.deadline);
    let on = true;
    const seen: Record<string, number> = {};
    const traffic = (async () => {
      for (let i = 0; on; i++)
        for (const a of [0, 1]) {
          const v = (await served(a, `u-${i % 200}`)) ?? 'none';
          seen[v] = (seen[v] ?? 0) + 1;
        }
    })();
    await sleep(4000);
    coord.child.kill('SIGKILL');
    await coord.exited;
    const killedAt = Date.now();
    coord = serve();
    await coord.waitFor(/coordinator ready on/);
    const rearm = await coord.waitFor(/canary re-armed after restart/);
    expect(rearm).toContain(runId);
    // Judged at the stored deadline: a fresh 15 s window from the restart would end after killedAt + 15 s.
    let p: Promotion = {};
    await until('the canary to end', async () => {
      p = lastJson<Promotion>((await m(['show', '1'])).stdout);
      return p.lastCanary !== undefined;
    }, 40_000);
    on = false;
    await traffic;
    const endedAt = Date.parse(p.lastCanary!.at);
    expect(p.lastCanary).toMatchObject({ version: 1, outcome: 'completed' });
    // Judged on the traffic of the whole window: agents that reconnect keep their split and its health window.
    expect(p.lastCanary!.reason).toMatch(/^healthy for the 15 s window: \d+ candidate \/ \d+ stable requests/);
    expect(endedAt).toBeGreaterThanOrEqual(deadline);
    expect(endedAt).toBeLessThan(Math.max(deadline, killedAt) + 8_000);
    expect(endedAt).toBeLessThan(killedAt + 15_000);
    // Both versions answered during the window, through the restart; afterwards version 1 alone.
    expect(seen['1']).toBeGreaterThan(0);
    expect(seen['2']).toBeGreaterThan(0);
    await until('agents serving 1 alone', async () => (await served(0, 'u-1')) === '1' && (await served(1, 'u-2')) === '1' && (await served(0, 'u-3')) === '1');
    console.log(JSON.stringify({ reason: p.lastCanary!.reason, endedAfterDeadlineMs: endedAt - deadline, killedBeforeDeadlineMs: deadline - killedAt, seen }));
  }, 120_000);
});
