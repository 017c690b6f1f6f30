/**
 * SCAFFOLD end to end with real processes: 3 MNIST agents on label shards (two over gRPC, one over MQTT, so the server
 * variate's download and the [delta | variate delta] upload cross both transports), one of them killed -9 mid-run and
 * restarted: its control variate file survives and is read back (its first result after the restart reports the
 * ||c_i|| of the file it was killed with), and the run completes and learns.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator, type Proc } from './harness.js';

const dirs: string[] = [];
afterAll(() => {
  killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Participant { name: string; outcome: string; reason?: string; metrics?: Record<string, number> }
interface RunJson {
  id: string;
  status: string;
  metrics: { round: number; status: string; centralAccuracy?: number; bytesReceived: number; bytesSent: number; completed: number }[];
  roundsDetail: { round: number; participants: Participant[] }[];
}

/** mnist-mlp: 784-200-200-10 with biases. */
const PARAMS = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const norm = (f: string): number => {
  const b = readFileSync(f);
  const v = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
};

describe('scaffold', () => {
  it('completes on label shards over gRPC and MQTT, and an agent killed -9 and restarted keeps its control variate', async () => {
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0']);
    expect(coord.mqttUrl).toBeDefined();
    const states = [0, 1, 2].map(() => {
      const d = mkdtempSync(path.join(tmpdir(), 'fedge-scaffold-agent-'));
      dirs.push(d);
      return d;
    });
    const args = (i: number) => ['--name', `sc-${i}`, '--partition', 'shards', '--num-partitions', '3', '--partition-id', String(i), '--seed', '3', '--state-dir', states[i]!];
    const start = (i: number): Proc => startAgent(i === 2 ? coord.mqttUrl! : coord.address, args(i));
    const agents = [0, 1, 2].map(start);
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));

    const started = await fedge(['run', 'start', '--coordinator', coord.address, '--strategy', 'scaffold', '--model', 'mnist-mlp', '--rounds', '6',
      '--min-agents', '3', '--epochs', '1', '--lr', '0.05', '--deadline', '120', '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const id = lastJson<{ id: string }>(started.stdout).id;
    const show = async (): Promise<RunJson> => {
      const r = await fedge(['run', 'show', id, '--coordinator', coord.address, '--format', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return lastJson<RunJson>(r.stdout);
    };
    const file = path.join(states[0]!, 'scaffold', `${id}.f32`);

    // After two rounds agent 0 has a non-zero c_i on disk (round 1's is (x - y)/(K lr) - 0).
    let run = await show();
    for (let t = 0; run.roundsDetail.length < 2 && t < 600; t++) {
      await sleep(300);
      run = await show();
    }
    expect(run.roundsDetail.length).toBeGreaterThanOrEqual(2);
    agents[0]!.child.kill('SIGKILL');
    await agents[0]!.exited;
    // Killed: the file cannot change any more; this is the variate the restarted agent must continue from.
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).size).toBe(PARAMS * 4);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const keptNorm = norm(file);
    expect(keptNorm).toBeGreaterThan(0);
    const roundsBeforeRestart = (await show()).roundsDetail.length;

    const again = start(0);
    await again.waitFor(/control variate read from disk/, 120_000);
    for (let t = 0; !['completed', 'failed', 'stopped'].includes(run.status) && t < 1000; t++) {
      await sleep(500);
      run = await show();
    }
    expect(run.status).toBe('completed');

    // The restarted agent's first result reports the ||c_i|| it loaded: the file's.
    const after = run.roundsDetail.slice(roundsBeforeRestart).flatMap((r) => r.participants.filter((p) => p.name === 'sc-0' && p.outcome === 'completed'));
    expect(after.length, JSON.stringify(run.roundsDetail.map((r) => r.participants))).toBeGreaterThan(0);
    expect(after[0]!.metrics!.scaffold_ci_norm).toBeCloseTo(keptNorm, 3);
    // And it went on: the file now holds a later variate.
    expect(norm(file)).not.toBe(keptNorm);

    // Uplink: every accepted update is [delta | variate delta], 2 x the model's float32 bytes. Downlink: c every task,
    // and the model unless the agent has that version already (after the failed round, only the restarted agent needs it).
    const done = run.metrics.filter((m) => m.status === 'completed');
    expect(done.length).toBeGreaterThanOrEqual(5);
    for (const [i, m] of run.metrics.entries()) {
      if (m.status !== 'completed') continue;
      expect(m.bytesReceived).toBe(m.completed * 2 * PARAMS * 4);
      if (i > 0 && run.metrics[i - 1]!.status === 'completed') expect(m.bytesSent).toBe(m.completed * 2 * PARAMS * 4);
      else expect(m.bytesSent).toBeGreaterThanOrEqual(m.completed * PARAMS * 4);
    }
    const accuracy = done.at(-1)!.centralAccuracy!;
    console.log(`scaffold e2e: ${run.metrics.map((m) => `${m.round}:${m.status}:${m.centralAccuracy?.toFixed(3)}`).join(' ')}`);
    // Three agents, each with a third of the digits: a model that learned from all of them, not one shard (< 0.4).
    expect(accuracy).toBeGreaterThan(0.6);
  }, 360_000);
});
