/**
 * Coordinator state survives kill -9: a run in progress resumes, after a restart on the same data directory and
 * port, at the round after its last completed one; the agents reconnect and the run completes with every round.
 * Also: Prometheus /metrics over real HTTP, and a second coordinator refused on a data directory in use.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FEDGE, fedge, killAll, lastJson, startAgent, startProcess, freePort } from './harness.js';

afterAll(() => killAll());


interface RunJson {
  id: string;
  status: string;
  statusMessage?: string;
  round: number;
  modelVersion: number;
  metrics: { round: number; version?: number; status: string; completed: number; centralAccuracy?: number; bytesSent: number }[];
  versions: { version: number; sha256: string; round: number; parent?: number }[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function show(address: string, id: string): Promise<RunJson> {
  const r = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return lastJson<RunJson>(r.stdout);
}

function serve(dataDir: string, port: number, extra: string[] = []) {
  return startProcess(FEDGE, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, ...extra]);
}

describe('durable coordinator', () => {
  it('kill -9 mid-run: restart on the same data dir resumes the run, agents reconnect, every round is there', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-durable-'));
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const first = serve(dataDir, port, ['--metrics', '127.0.0.1:0']);
    await first.waitFor(/coordinator ready on/);
    const metricsAddr = /metrics on http:\/\/([\d.]+:\d+)\/metrics/.exec(await first.waitFor(/metrics on http/))![1]!;
    const agents = [0, 1].map((i) =>
      startAgent(address, ['--name', `d-${i}`, '--partition', 'iid', '--num-partitions', '2', '--partition-id', String(i), '--seed', '3']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));

    const started = await fedge(['run', 'start', '--coordinator', address, '--model', 'mnist-mlp', '--rounds', '6', '--min-agents', '2',
      '--epochs', '1', '--lr', '0.1', '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const id = lastJson<RunJson>(started.stdout).id;

    let before = await show(address, id);
    for (let i = 0; i < 240 && before.round < 2; i++) {
      await sleep(250);
      before = await show(address, id);
    }
    expect(before.round).toBeGreaterThanOrEqual(2);

    // Metrics over real HTTP while the run is going.
    const res = await fetch(`http://${metricsAddr}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(new RegExp(`fedge_rounds_total\\{run_id="${id}",status="completed"\\} [2-6]`));
    expect(text).toMatch(/fedge_agents\{status="online"\} 2/);
    expect(text).toMatch(new RegExp(`fedge_bytes_sent_total\\{run_id="${id}"\\} [1-9]\\d*`));
    expect(text).toMatch(new RegExp(`fedge_central_accuracy\\{run_id="${id}"\\} 0\\.\\d+`));
    expect(text).toMatch(new RegExp(`fedge_aggregation_seconds_count\\{run_id="${id}"\\} [2-6]`));
    expect(text).toContain('# TYPE fedge_rejected_updates_total counter');
    expect((await fetch(`http://${metricsAddr}/other`)).status).toBe(404);

    interface AgentJson { id: string; name: string; status: string; tasksCompleted: number; joinedAt: string }
    const listAgents = async (): Promise<AgentJson[]> => {
      const r = await fedge(['agent', 'list', '--coordinator', address, '--format', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as AgentJson[]).sort((a, b) => a.name.localeCompare(b.name));
    };
    const agentsBefore = await listAgents();
    expect(agentsBefore.map((a) => a.name)).toEqual(['d-0', 'd-1']);

    // Crash the coordinator mid-run.
    first.child.kill('SIGKILL');
    await first.exited;
    const crashed = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
    expect(crashed.code).not.toBe(0);

    const second = serve(dataDir, port);
    const resumedLine = await second.waitFor(/run resumed after restart/);
    const resumedAt = (JSON.parse(resumedLine) as { round: number }).round;
    expect(resumedAt).toBeGreaterThanOrEqual(before.round);
    expect(resumedAt).toBeLessThan(6);
    // The agents find the coordinator again on their own.
    const joins = (): number[] => agents.map((a) => a.output().match(/joined coordinator/g)?.length ?? 0);
    for (let i = 0; i < 360 && joins().some((n) => n < 2); i++) await sleep(250);
    expect(joins().every((n) => n >= 2)).toBe(true);

    // They come back as themselves: same ids, join times and (at least the) task counts as before the crash.
    const agentsAfter = await listAgents();
    expect(agentsAfter.map((a) => [a.id, a.name, a.joinedAt])).toEqual(agentsBefore.map((a) => [a.id, a.name, a.joinedAt]));
    for (const [i, a] of agentsAfter.entries()) expect(a.tasksCompleted).toBeGreaterThanOrEqual(agentsBefore[i]!.tasksCompleted);

    let after = await show(address, id);
    for (let i = 0; i < 720 && !['completed', 'failed', 'stopped'].includes(after.status); i++) {
      await sleep(250);
      after = await show(address, id);
    }
    expect(after.status, after.statusMessage).toBe('completed');
    expect(after.round).toBe(6);
    expect(after.metrics.map((m) => m.round)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(after.metrics.every((m) => m.status === 'completed' && m.completed === 2)).toBe(true);
    expect(after.versions.map((v) => v.version)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(after.versions.slice(1).every((v) => v.parent === v.version - 1)).toBe(true);
    // Rounds completed before the crash are kept exactly as they were.
    for (const m of before.metrics) expect(after.metrics[m.round - 1]).toEqual(expect.objectContaining({ round: m.round, version: m.version, centralAccuracy: m.centralAccuracy }));
    expect(after.metrics[5]!.centralAccuracy!).toBeGreaterThan(0.8);
    // Each round's participants (stored apart from its record, issue 16) survived the crash, as its summary counts them.
    const parts = await fedge(['run', 'participants', id, '--coordinator', address, '--status', 'completed', '--format', 'json']);
    expect(parts.code, parts.stderr).toBe(0);
    const rows = (JSON.parse(parts.stdout) as { total: number; participants: { round: number; name: string }[] }).participants;
    for (const m of after.metrics) expect(new Set(rows.filter((p) => p.round === m.round).map((p) => p.name)).size, `round ${m.round}`).toBe(m.completed);
    // Every version retention keeps (the default keeps the last 5, versions 2-6 here) is in the content-addressed
    // store; only versions marked collected may have lost their file.
    const kept = after.versions.filter((v) => !(v as { collected?: unknown }).collected);
    expect(kept.map((v) => v.version)).toEqual(expect.arrayContaining([2, 3, 4, 5, 6]));
    for (const v of kept) expect(existsSync(path.join(dataDir, 'models', `${v.sha256}.bin`)), `version ${v.version}`).toBe(true);

    // A second coordinator on the same data directory is refused with a clear error.
    const intruder = await fedge(['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
    expect(intruder.code).toBe(1);
    expect(intruder.stderr).toMatch(/E_DATA_DIR_LOCKED/);

    // The model registry lists every version with its digest, round and parent.
    const list = await fedge(['model', 'list', '--run', id, '--coordinator', address, '--format', 'json']);
    expect(list.code, list.stderr).toBe(0);
    const entries = JSON.parse(list.stdout) as { runId: string; version: number; sha256: string; parent?: number; latest: boolean }[];
    expect(entries.map((e) => e.version)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(entries.filter((e) => e.latest).map((e) => e.version)).toEqual([6]);
    const one = await fedge(['model', 'show', '6', '--run', id, '--coordinator', address, '--format', 'json']);
    expect(lastJson<{ sha256: string; parent: number }>(one.stdout)).toEqual(expect.objectContaining({ sha256: after.versions[6]!.sha256, parent: 5 }));
    const missing = await fedge(['model', 'show', '9', '--run', id, '--coordinator', address]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no model version 9/);

    // A graceful shutdown (SIGTERM) also leaves an active run to resume.
    // 8 rounds, so the SIGTERM below lands while it trains (3 rounds of this small model could end first).
    const next = await fedge(['run', 'start', '--coordinator', address, '--model', 'mnist-mlp', '--rounds', '8', '--min-agents', '2', '--epochs', '1', '--format', 'json']);
    const id2 = lastJson<RunJson>(next.stdout).id;
    for (let i = 0; i < 240 && (await show(address, id2)).round < 1; i++) await sleep(250);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.output()).toMatch(/run left to resume on restart/);
    const third = serve(dataDir, port);
    await third.waitFor(/run resumed after restart/);
    let r2 = await show(address, id2);
    for (let i = 0; i < 720 && !['completed', 'failed', 'stopped'].includes(r2.status); i++) {
      await sleep(250);
      r2 = await show(address, id2);
    }
    expect(r2.status, r2.statusMessage).toBe('completed');
    expect(r2.metrics.map((m) => m.round)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }, 300_000);
});
