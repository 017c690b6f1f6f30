/**
 * Compression pipelines end to end with real processes: two MNIST agents send top-k 1% + 8-bit stochastic updates
 * and receive models as fp16 deltas (compression.downlink). One agent is killed -9 after two rounds and restarted: its
 * error-feedback residual file (written atomically after each accepted update) is read back, and the run completes
 * and learns; a second run discards the first run's residual. Over MQTT, agents receive delta+q8 chains the same way.
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

interface RunJson {
  id: string;
  status: string;
  metrics: { round: number; status: string; centralAccuracy?: number; bytesReceived: number; bytesSent: number; completed: number }[];
}

/** mnist-mlp: 784-200-200-10 with biases. */
const PARAMS = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('compression pipelines', () => {
  it('topk:0.01+q8 up, delta+fp16 down; a restarted agent continues with its residual, a new run discards it', async () => {
    const coord = await startCoordinator();
    const states = [0, 1].map(() => {
      const d = mkdtempSync(path.join(tmpdir(), 'fedge-compression-agent-'));
      dirs.push(d);
      return d;
    });
    const start = (i: number): Proc => startAgent(coord.address, ['--name', `cx-${i}`, '--partition', 'shards', '--num-partitions', '2', '--partition-id', String(i), '--seed', '3', '--state-dir', states[i]!]);
    const agents = [0, 1].map(start);
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/, 240_000))); // a loaded machine: tfjs and the digits take a while
    const runStart = async (rounds: number): Promise<string> => {
      const r = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', String(rounds), '--min-agents', '2', '--epochs', '1',
        '--lr', '0.05', '--deadline', '120', '--compression', 'topk:0.01+q8', '--downlink-compression', 'delta+fp16', '--format', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return lastJson<{ id: string }>(r.stdout).id;
    };
    const show = async (id: string): Promise<RunJson> => {
      const r = await fedge(['run', 'show', id, '--coordinator', coord.address, '--format', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return lastJson<RunJson>(r.stdout);
    };
    const id = await runStart(5);
    const file = path.join(states[0]!, 'feedback.bin');
    let run = await show(id);
    for (let t = 0; run.metrics.filter((m) => m.status === 'completed').length < 2 && t < 600; t++) {
      await sleep(300);
      run = await show(id);
    }
    agents[0]!.child.kill('SIGKILL');
    await agents[0]!.exited;
    // Killed: the residual on disk names this run, is private, and holds the model's n values (plus the header).
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const bytes = readFileSync(file);
    expect(bytes.subarray(4, 4 + bytes.readUInt32LE(0)).toString()).toBe(id);
    expect(bytes.byteLength).toBe(4 + id.length + 13 + 4 * PARAMS);

    const again = start(0);
    const line = await again.waitFor(/error-feedback residual read from disk/, 120_000);
    expect(JSON.parse(line).residualNorm).toBeGreaterThan(0);
    for (let t = 0; !['completed', 'failed', 'stopped'].includes(run.status) && t < 1000; t++) {
      await sleep(500);
      run = await show(id);
    }
    expect(run.status).toBe('completed');
    const done = run.metrics.filter((m) => m.status === 'completed');
    expect(done.length).toBeGreaterThanOrEqual(4);
    for (const m of done) {
      // top-k 1% of 199,210 values at 1 byte each plus ~2-byte varint gaps: below 0.01x of float32 per update.
      expect(m.bytesReceived / m.completed).toBeLessThan(0.01 * PARAMS * 4);
    }
    // Downlink: after the first round an agent holding the previous version gets an fp16 delta, half the model.
    const later = done.slice(1).filter((m) => m.bytesSent > 0);
    expect(later.some((m) => m.bytesSent < m.completed * PARAMS * 4 * 0.6), JSON.stringify(done)).toBe(true);
    console.log(`compression e2e: ${run.metrics.map((m) => `${m.round}:${m.status}:${m.centralAccuracy?.toFixed(3)}:${m.bytesReceived}/${m.bytesSent}`).join(' ')}`);
    // Two agents with five digits each: above 0.5 only a model that learned from both shards (one run: 0.625 at round 5).
    expect(done.at(-1)!.centralAccuracy!).toBeGreaterThan(0.5);
    const text = await fedge(['run', 'show', id, '--coordinator', coord.address]);
    expect(text.stdout).toMatch(/compression: uplink topk:0.01\+q8 with error feedback; downlink delta\+fp16/);
    expect(text.stdout).toMatch(/traffic: uplink .* dense float32\), downlink .*\(0\.\d+x\)/);

    // A new run: the agents drop the old run's residual.
    const second = await runStart(1);
    await again.waitFor(/discarding the error-feedback residual of another run/, 120_000);
    for (let t = 0; (await show(second)).status === 'running' && t < 400; t++) await sleep(500);
  }, 900_000);

  it('over MQTT too: agents holding the previous version get delta+q8 chains (downlink well below 1x) and the run learns', async () => {
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0']);
    const agents = [0, 1].map((i) => startAgent(coord.mqttUrl!, ['--name', `mq-dl-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '4']));
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/, 240_000)));
    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '3', '--min-agents', '2', '--epochs', '1',
      '--lr', '0.1', '--deadline', '120', '--downlink-compression', 'delta+q8', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson & { initialAccuracy?: number; roundsDetail: { round: number; status: string; bytesSent: number; bytesSentDense?: number }[] }>(res.stdout);
    expect(run.status).toBe('completed');
    const rounds = run.roundsDetail.filter((r) => r.status === 'completed');
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3]);
    const ratios = rounds.map((r) => r.bytesSent / (r.bytesSentDense ?? r.bytesSent));
    console.log(`compression e2e (MQTT, delta+q8): per-round downlink ratio ${ratios.map((x) => x.toFixed(3)).join(' ')}; accuracy ${run.initialAccuracy?.toFixed(3)} -> ${run.metrics.map((m) => m.centralAccuracy?.toFixed(3)).join(' ')}`);
    // Round 1: fresh agents get the full model (1x). Then each holds the previous version: an 8-bit delta is ~0.25x.
    expect(ratios[0]).toBeCloseTo(1, 5);
    for (const x of ratios.slice(1)) expect(x).toBeLessThan(0.35);
    const total = rounds.reduce((a, r) => a + r.bytesSent, 0) / rounds.reduce((a, r) => a + (r.bytesSentDense ?? r.bytesSent), 0);
    expect(total).toBeLessThan(0.6);
    // The chains rebuilt the signed versions: no agent refused one and fell back to the full model.
    for (const a of agents) expect(a.output()).not.toMatch(/model delta refused/);
    expect(run.metrics.at(-1)!.centralAccuracy!).toBeGreaterThan(run.initialAccuracy! + 0.3);
    const text = await fedge(['run', 'show', run.id, '--coordinator', coord.address]);
    expect(text.stdout).toMatch(/traffic: uplink .*, downlink .*\(0\.\d+x\)/);
  }, 600_000);
});
