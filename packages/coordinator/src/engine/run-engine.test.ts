/** Engine semantics with a tiny model and in-memory agent channels: buffers, staleness weights, late results. */
import { afterEach, describe, expect, it } from 'vitest';
import { UPDATE_ENCODING, type TaskMsg } from '@fedge/proto';
import { parseRunConfig, type RunConfigInput } from '../config/run-config.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { createStrategy } from '../strategy/index.js';
import { planEpsilon } from '../privacy/accountant.js';
import { AgentRegistry } from './agent-registry.js';
import { RunEngine } from './run-engine.js';
import { RunContext } from './run-context.js';
import { DiskSpool } from './update-spool.js';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const N = 37; // not a multiple of 4: exercises the SIMD tail
const specs = [{ name: 'w', dtype: 'float32' as const, shape: [N] }];

interface FakeAgent { id: string; token: string; name: string; tasks: TaskMsg[] }

const engines: RunEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.stop('test over');
});

function setup(input: RunConfigInput, names: string[], opts: { store?: MemoryStore; spool?: DiskSpool; run?: RunRecord; weights?: Float32Array; scratchDir?: string } = {}) {
  const store = opts.store ?? new MemoryStore();
  const registry = new AgentRegistry(store);
  const config = parseRunConfig({ centralEvaluation: false, roundDeadlineSeconds: 5, ...input });
  const run: RunRecord = opts.run ?? { id: 'run-test', config, status: 'pending', createdAt: new Date().toISOString(), round: 0, modelVersion: 0, rounds: [], versions: [] };
  const agents = names.map((name): FakeAgent => {
    const { agentId, sessionToken } = registry.join({ name, agentId: '', joinToken: '', backend: 'test', agentVersion: 't', numExamples: 10, labels: {} });
    const a: FakeAgent = { id: agentId, token: sessionToken, name, tasks: [] };
    registry.attach(agentId, { send: (t) => a.tasks.push(t), close: () => undefined });
    return a;
  });
  // The registry the coordinator uses: FedAvg, or DP around it when the config has a privacy block.
  const strategy = createStrategy(config, { populationSize: () => names.length });
  const engine = new RunEngine(new RunContext(run, store), { topology: {}, tensors: specs, weights: opts.weights ?? new Float32Array(N) }, {
    store,
    registry,
    ...(opts.spool ? { spool: opts.spool } : {}),
    ...(opts.scratchDir ? { scratchDir: opts.scratchDir } : {}),
    strategy,
  });
  engines.push(engine);
  const finished = engine.execute();
  const byName = Object.fromEntries(agents.map((a) => [a.name, a]));
  // The participants of the run's i-th round: kept apart from the record (which has their summary), as the engine sees them.
  const parts = async (i: number) => (await engine.ctx.listParticipants({ round: run.rounds[i]!.round, limit: 1e6, offset: 0 })).participants;
  return { engine, run, agents: byName, finished, store, parts };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const trainTasks = (a: FakeAgent): TaskMsg[] => a.tasks.filter((t) => t.kind === 'train');

async function submit(engine: RunEngine, a: FakeAgent, task: TaskMsg, value: number, n: number, opts: { abortHalfway?: boolean } = {}) {
  const delta = new Float32Array(N).fill(value);
  const sink = await engine.beginUpload({
    agentId: a.id, sessionToken: a.token, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
    kind: 'train', numExamples: n, tensors: specs, totalBytes: delta.byteLength, encoding: UPDATE_ENCODING, metrics: { train_loss: 1 },
  });
  const bytes = new Uint8Array(delta.buffer);
  if (opts.abortHalfway) {
    sink.write(0, bytes.subarray(0, 64));
    sink.abort('disconnected mid-upload');
    return undefined;
  }
  sink.write(0, bytes);
  return sink.commit();
}

/**
 * The expected weights below are FedBuff's step with FedAvg's server step (async runs default to fedadam) and no
 * speed weighting (its factor depends on how long each fake agent took to answer).
 */
const FEDAVG = { name: 'fedavg' } as const;

describe('async buffered aggregation (FedBuff)', () => {
  it('cuts a version from exactly K updates, weighting each by examples x (1 + tau)^-0.5', async () => {
    const { engine, run, agents, finished, parts } = setup({ mode: 'async', strategy: FEDAVG, staleness: { fn: 'polynomial', a: 0.5 }, rounds: 2, async: { bufferSize: 2, speedWeighting: false }, agentsPerRound: { min: 1 } }, ['a', 'b', 'c']);
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    expect(trainTasks(c)[0]!.modelVersion).toBe(0);

    expect(await submit(engine, a, trainTasks(a)[0]!, 1, 10)).toMatchObject({ accepted: true });
    expect(engine.globalModel.version).toBe(0); // one update is not a step
    expect(await submit(engine, b, trainTasks(b)[0]!, 3, 30)).toMatchObject({ accepted: true });
    expect(engine.globalModel.version).toBe(1); // cut synchronously by the K-th commit
    expect([...engine.globalModel.blob.weights]).toEqual(new Array(N).fill(2.5)); // (10*1 + 30*3) / 40

    // Finished agents are re-dispatched at once on the newest version: a got v0 (no step yet), b got v1.
    await until(() => trainTasks(a).length === 2 && trainTasks(b).length === 2);
    expect(trainTasks(a)[1]!.modelVersion).toBe(0);
    expect(trainTasks(b)[1]!.modelVersion).toBe(1);
    expect(await submit(engine, c, trainTasks(c)[0]!, 4, 20)).toMatchObject({ accepted: true });
    expect(await submit(engine, b, trainTasks(b)[1]!, -1, 30)).toMatchObject({ accepted: true });
    expect(engine.globalModel.version).toBe(2);
    const s = 2 ** -0.5;
    const expected = 2.5 + (20 * s * 4 + 30 * -1) / (20 + 30);
    for (const w of engine.globalModel.blob.weights) expect(w).toBeCloseTo(expected, 5);

    await finished;
    expect(run.status).toBe('completed');
    expect(run.rounds).toHaveLength(2);
    expect((await parts(0)).filter((p) => p.outcome === 'completed')).toHaveLength(2);
    const step2 = run.rounds[1]!;
    expect(step2.stalenessHistogram).toEqual({ 0: 1, 1: 1 });
    const pc = (await parts(1)).find((p) => p.name === 'c')!;
    expect(pc).toMatchObject({ outcome: 'completed', baseVersion: 0, staleness: 1 });
    expect(pc.weight).toBeCloseTo(20 * s, 10);
  });

  it('an agent dying mid-upload leaves no trace in the model', async () => {
    const { engine, run, agents, finished, parts } = setup({ mode: 'async', strategy: FEDAVG, rounds: 1, async: { bufferSize: 2, speedWeighting: false }, agentsPerRound: { min: 1 } }, ['a', 'b', 'c']);
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    await submit(engine, a, trainTasks(a)[0]!, 1e6, 1000, { abortHalfway: true });
    await submit(engine, b, trainTasks(b)[0]!, 1, 10);
    await submit(engine, c, trainTasks(c)[0]!, 3, 30);
    expect([...engine.globalModel.blob.weights]).toEqual(new Array(N).fill(2.5));
    await finished;
    expect((await parts(0)).find((p) => p.name === 'a')).toMatchObject({ outcome: 'dropped' });
  });

  it('bufferSize "auto" becomes min(agents available, 10) when the run starts, written into the run\'s config', async () => {
    const { engine, run, agents, finished, parts } = setup({ mode: 'async', strategy: FEDAVG, rounds: 1, agentsPerRound: { min: 1 } }, ['a', 'b', 'c']);
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    expect(run.config.async.bufferSize).toBe(3);
    await submit(engine, a, trainTasks(a)[0]!, 1, 10);
    await submit(engine, b, trainTasks(b)[0]!, 1, 10);
    expect(engine.globalModel.version).toBe(0); // two updates are not a step when K = 3
    await submit(engine, c, trainTasks(c)[0]!, 1, 10);
    expect(engine.globalModel.version).toBe(1);
    await finished;
    expect((await parts(0)).filter((p) => p.outcome === 'completed')).toHaveLength(3);
  });

  it('speedWeighting: a slow agent\'s update weighs (its task time / the median agent\'s) times more, and says so', async () => {
    const { engine, run, agents, finished, parts } = setup({ mode: 'async', strategy: FEDAVG, rounds: 1, async: { bufferSize: 3 }, agentsPerRound: { min: 1 } }, ['a', 'b', 'c']);
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    await submit(engine, a, trainTasks(a)[0]!, 1, 10);
    await submit(engine, b, trainTasks(b)[0]!, 1, 10);
    await new Promise((r) => setTimeout(r, 400));
    await submit(engine, c, trainTasks(c)[0]!, 1, 10);
    await finished;
    const ps = await parts(0);
    const pc = ps.find((p) => p.name === 'c')!;
    expect(pc.speedFactor).toBeGreaterThan(1);
    expect(pc.speedFactor).toBeLessThanOrEqual(10);
    expect(pc.weight).toBeCloseTo(10 * pc.speedFactor!, 10);
    // a and b answered at once: at most timer jitter above the median (a, the first, is the median of itself).
    expect(ps.find((p) => p.name === 'a')).toMatchObject({ weight: 10 });
    const pb = ps.find((p) => p.name === 'b')!;
    expect(pb.speedFactor ?? 1).toBeLessThan(pc.speedFactor!);
    expect(pb.weight).toBeCloseTo(10 * (pb.speedFactor ?? 1), 10);
  });

  it('rejects updates beyond maxStaleness', async () => {
    const { engine, agents } = setup({ mode: 'async', rounds: 5, async: { bufferSize: 1, maxStaleness: 1 }, agentsPerRound: { min: 1 } }, ['a', 'b']);
    const { a, b } = agents as Record<string, FakeAgent>;
    await until(() => trainTasks(a).length === 1 && trainTasks(b).length === 1);
    await submit(engine, a, trainTasks(a)[0]!, 1, 10);
    await until(() => trainTasks(a).length === 2);
    await submit(engine, a, trainTasks(a)[1]!, 1, 10);
    expect(engine.globalModel.version).toBe(2);
    const r = await submit(engine, b, trainTasks(b)[0]!, 1, 10).catch((e: { reason: string }) => ({ accepted: false, reason: e.reason }));
    expect(r).toMatchObject({ accepted: false, reason: 'too_stale' });
  });
});

describe('crash safety with a spool', () => {
  it('an async update accepted before a restart is folded into the restored buffer, once', async () => {
    const spool = new DiskSpool(mkdtempSync(path.join(tmpdir(), 'fedge-spool-')));
    const cfg: RunConfigInput = { mode: 'async', strategy: FEDAVG, rounds: 1, async: { bufferSize: 2, speedWeighting: false }, agentsPerRound: { min: 1 } };
    const first = setup(cfg, ['a', 'b'], { spool });
    const { a } = first.agents as Record<string, FakeAgent>;
    await until(() => trainTasks(a).length === 1);
    expect(await submit(first.engine, a, trainTasks(a)[0]!, 1, 10)).toMatchObject({ accepted: true });
    // "Crash": the engine is abandoned; a new one starts from the persisted record and the same spool.
    const saved = (await first.store.getRun('run-test'))!;
    first.engine.removeAllListeners();
    expect(saved.openRound?.accepted).toHaveLength(1);
    const second = setup(cfg, ['a2', 'b2'], { spool, store: first.store, run: saved });
    first.engine.stop('crashed');
    const { b2 } = second.agents as Record<string, FakeAgent>;
    await until(() => trainTasks(b2).length >= 1);
    expect(await submit(second.engine, b2, trainTasks(b2)[0]!, 3, 30)).toMatchObject({ accepted: true });
    await second.finished;
    expect([...second.engine.globalModel.blob.weights]).toEqual(new Array(N).fill(2.5)); // (10*1 + 30*3) / 40: both, once
    expect((await second.parts(0)).filter((p) => p.outcome === 'completed').map((p) => p.name).sort()).toEqual(['a', 'b2']);
  });
});

describe('async buffered aggregation with central DP', () => {
  const privacy = { mode: 'central', clipNorm: 1, noiseMultiplier: 1.5, delta: 1e-5 };

  it('accounts each step as a Gaussian mechanism with q = 1, one update per agent per buffer', async () => {
    const { engine, run, agents, finished } = setup(
      { mode: 'async', rounds: 3, async: { bufferSize: 2 }, agentsPerRound: { min: 1, fraction: 1 }, privacy },
      ['a', 'b'],
    );
    const { a, b } = agents as Record<string, FakeAgent>;
    for (let step = 1; step <= 3; step++) {
      await until(() => trainTasks(a).length === step && trainTasks(b).length === step);
      await submit(engine, a, trainTasks(a)[step - 1]!, 0.1, 10);
      // a already contributed to this buffer: it is not handed another task until the version is cut.
      await new Promise((r) => setTimeout(r, 30));
      expect(trainTasks(a)).toHaveLength(step);
      await submit(engine, b, trainTasks(b)[step - 1]!, 0.1, 10);
    }
    await finished;
    expect(run.status).toBe('completed');
    expect(run.rounds).toHaveLength(3);
    for (const [i, r] of run.rounds.entries()) {
      const planned = planEpsilon({ samplingRate: 1, noiseMultiplier: 1.5, steps: i + 1, delta: 1e-5 }).epsilon;
      expect((r as { epsilon?: number }).epsilon).toBeCloseTo(planned, 9);
    }
  });

  it('refuses an update longer than the clip norm its task carried: the sensitivity bound does not trust agents', async () => {
    const { engine, run, agents, finished, parts } = setup(
      { mode: 'async', rounds: 1, async: { bufferSize: 1 }, agentsPerRound: { min: 1, fraction: 1 }, privacy },
      ['a'],
    );
    const { a } = agents as Record<string, FakeAgent>;
    await until(() => trainTasks(a).length === 1);
    expect(trainTasks(a)[0]!.config.clipNorm).toBe(1);
    // N = 37 values of 0.2: L2 norm 1.217 > 1.
    expect(await submit(engine, a, trainTasks(a)[0]!, 0.2, 10)).toMatchObject({ accepted: false, reason: 'norm_exceeds_clip' });
    await until(() => trainTasks(a).length === 2);
    expect(await submit(engine, a, trainTasks(a)[1]!, 0.1, 10)).toMatchObject({ accepted: true });
    await finished;
    expect(run.status).toBe('completed');
    expect((await parts(0)).filter((p) => p.outcome === 'completed')).toHaveLength(1);
  });

  it('stops before the step that would exceed maxEpsilon', async () => {
    const one = planEpsilon({ samplingRate: 1, noiseMultiplier: 1.5, steps: 1, delta: 1e-5 }).epsilon;
    const two = planEpsilon({ samplingRate: 1, noiseMultiplier: 1.5, steps: 2, delta: 1e-5 }).epsilon;
    const { engine, run, agents, finished } = setup(
      { mode: 'async', rounds: 5, async: { bufferSize: 1 }, agentsPerRound: { min: 1, fraction: 1 }, privacy: { ...privacy, maxEpsilon: (one + two) / 2 } },
      ['a'],
    );
    const { a } = agents as Record<string, FakeAgent>;
    await until(() => trainTasks(a).length === 1);
    await submit(engine, a, trainTasks(a)[0]!, 0.1, 10);
    await finished;
    expect(run.rounds).toHaveLength(1);
    expect(run.statusMessage).toMatch(/privacy budget: stopped before round 2/);
  });
});

describe('sync rounds', () => {
  it('folds a late result into the next round with its staleness discount (lateResults: next-round)', async () => {
    const { engine, run, agents, parts } = setup(
      { rounds: 2, agentsPerRound: { min: 2 }, roundDeadlineSeconds: 0.4, sync: { lateResults: 'next-round' } },
      ['a', 'b', 'c'],
    );
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    await submit(engine, a, trainTasks(a)[0]!, 1, 10);
    await submit(engine, b, trainTasks(b)[0]!, 3, 30);
    await until(() => run.rounds.length === 1); // closed by the deadline with c still training
    expect((await parts(0)).find((p) => p.name === 'c')).toMatchObject({ outcome: 'late' });
    await until(() => trainTasks(a).length === 2 && trainTasks(b).length === 2);
    expect(trainTasks(c)).toHaveLength(1); // still busy with round 1: not invited
    expect(c.tasks.some((t) => t.kind === 'cancel')).toBe(false);

    expect(await submit(engine, c, trainTasks(c)[0]!, 4, 20)).toMatchObject({ accepted: true });
    await submit(engine, a, trainTasks(a)[1]!, 0, 10);
    await submit(engine, b, trainTasks(b)[1]!, 0, 30);
    await until(() => run.rounds.length === 2);
    const s = 2 ** -0.5;
    // Round 2 averages a, b (delta 0) and c's late delta 4 weighted 20*s; FedAvg divides by the weights.
    const expected = 2.5 + (20 * s * 4) / (10 + 30 + 20 * s);
    for (const w of engine.globalModel.blob.weights) expect(w).toBeCloseTo(expected, 5);
    const pc = (await parts(1)).find((p) => p.name === 'c')!;
    expect(pc).toMatchObject({ outcome: 'completed', staleness: 1, reason: 'late result from round 1' });
    expect((await parts(0)).find((p) => p.name === 'c')!.reason).toMatch(/folded into round 2/);
  });

  it('cancels late agents and rejects their results (lateResults: discard)', async () => {
    const { engine, run, agents } = setup({ rounds: 2, agentsPerRound: { min: 2 }, roundDeadlineSeconds: 0.4 }, ['a', 'b', 'c']);
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    await submit(engine, a, trainTasks(a)[0]!, 1, 10);
    await submit(engine, b, trainTasks(b)[0]!, 3, 30);
    await until(() => run.rounds.length === 1);
    expect(c.tasks.some((t) => t.kind === 'cancel' && t.taskId === trainTasks(c)[0]!.taskId)).toBe(true);
    const r = await submit(engine, c, trainTasks(c)[0]!, 4, 20).catch((e: { reason: string }) => ({ accepted: false, reason: e.reason }));
    expect(r).toMatchObject({ accepted: false, reason: 'stale_round' });
    // c was freed by the cancel, so it is invited again.
    await until(() => trainTasks(c).length === 2);
  });

  it('over-selection closes the round on the first results needed', async () => {
    const { engine, run, agents, parts } = setup({ rounds: 1, agentsPerRound: { min: 2, fraction: 0.5 }, sync: { overSelection: 1 } }, ['a', 'b', 'c', 'd']);
    const all = Object.values(agents);
    await until(() => all.every((x) => trainTasks(x).length === 1)); // 2 needed + 100% extra
    const [first, second, ...rest] = all;
    await submit(engine, first!, trainTasks(first!)[0]!, 1, 10);
    await submit(engine, second!, trainTasks(second!)[0]!, 3, 30);
    await until(() => run.rounds.length === 1);
    expect([...engine.globalModel.blob.weights]).toEqual(new Array(N).fill(2.5));
    for (const x of rest) {
      expect((await parts(0)).find((p) => p.agentId === x.id)).toMatchObject({ outcome: 'late' });
      expect((await parts(0)).find((p) => p.agentId === x.id)!.reason).toMatch(/enough results/);
      expect(x.tasks.some((t) => t.kind === 'cancel')).toBe(true);
    }
    expect(run.rounds[0]!.seconds).toBeLessThan(2);
  });
});

describe('robust strategies in sync rounds (every update kept, aggregated from the spool)', () => {
  it('median of a round without a durable store: scratch files under scratchDir, removed once folded', async () => {
    const scratchDir = mkdtempSync(path.join(tmpdir(), 'fedge-scratch-'));
    const { engine, run, agents, finished } = setup({ rounds: 1, agentsPerRound: { min: 3 }, strategy: { name: 'median' } }, ['a', 'b', 'c'], { scratchDir });
    const { a, b, c } = agents as Record<string, FakeAgent>;
    await until(() => [a, b, c].every((x) => trainTasks(x).length === 1));
    expect(await submit(engine, c, trainTasks(c)[0]!, 100, 10)).toMatchObject({ accepted: true }); // the attacker
    expect(await submit(engine, a, trainTasks(a)[0]!, 1, 10)).toMatchObject({ accepted: true });
    // Kept on disk until the round is folded.
    expect(readdirSync(scratchDir)).toHaveLength(1);
    expect(await submit(engine, b, trainTasks(b)[0]!, 2, 10)).toMatchObject({ accepted: true });
    await finished;
    expect(run.rounds[0]!.status).toBe('completed');
    expect([...engine.globalModel.blob.weights]).toEqual(new Array(N).fill(2)); // the mean would be 34.33
    expect(readdirSync(scratchDir)).toEqual([]);
  });

  it('krum whose round is too small for f: no model, the reason says so', async () => {
    const { run, agents, engine, finished } = setup({ rounds: 1, agentsPerRound: { min: 3 }, strategy: { name: 'krum', f: 1 } }, ['a', 'b', 'c']);
    for (const x of Object.values(agents)) {
      await until(() => trainTasks(x).length === 1);
      await submit(engine, x, trainTasks(x)[0]!, 1, 10);
    }
    await finished;
    expect(run.rounds[0]).toMatchObject({ status: 'failed', reason: expect.stringMatching(/krum: f=1 needs more than 2f\+2 = 4 updates, got 3/) });
  });

  it('a restarted robust round aggregates the updates spooled before the crash with those after it', async () => {
    const spool = new DiskSpool(mkdtempSync(path.join(tmpdir(), 'fedge-spool-')));
    const cfg: RunConfigInput = { rounds: 1, agentsPerRound: { min: 3 }, strategy: { name: 'median' } };
    const first = setup(cfg, ['a', 'b', 'c'], { spool });
    const { a, b } = first.agents as Record<string, FakeAgent>;
    await until(() => [a, b].every((x) => trainTasks(x).length === 1));
    expect(await submit(first.engine, a, trainTasks(a)[0]!, 1, 10)).toMatchObject({ accepted: true });
    expect(await submit(first.engine, b, trainTasks(b)[0]!, 2, 10)).toMatchObject({ accepted: true });
    const saved = (await first.store.getRun('run-test'))!;
    first.engine.removeAllListeners();
    expect(saved.openRound?.accepted.map((x) => x.name).sort()).toEqual(['a', 'b']);
    const second = setup(cfg, ['a', 'b', 'c'], { spool, store: first.store, run: saved });
    first.engine.stop('crashed');
    const { c } = second.agents as Record<string, FakeAgent>;
    await until(() => trainTasks(c).length >= 1);
    expect(await submit(second.engine, c, trainTasks(c).at(-1)!, 100, 10)).toMatchObject({ accepted: true });
    await second.finished;
    expect(second.run.rounds[0]!.status).toBe('completed');
    expect([...second.engine.globalModel.blob.weights]).toEqual(new Array(N).fill(2));
    expect((await second.parts(0)).filter((p) => p.outcome === 'completed').map((p) => p.name).sort()).toEqual(['a', 'b', 'c']);
  });
});

describe('strategy.normBound', () => {
  it('scales each accepted update to at most the bound before it is folded, and says so on the participant', async () => {
    const { engine, run, agents, finished, parts } = setup({ rounds: 1, agentsPerRound: { min: 2 }, strategy: { name: 'fedavg', normBound: 1 } }, ['a', 'b']);
    const { a, b } = agents as Record<string, FakeAgent>;
    await until(() => [a, b].every((x) => trainTasks(x).length === 1));
    await submit(engine, a, trainTasks(a)[0]!, 1, 10); // norm sqrt(37) ≈ 6.08: scaled to 1
    await submit(engine, b, trainTasks(b)[0]!, 0.1, 10); // norm 0.608: untouched
    await finished;
    const scaled = (1 / Math.sqrt(N)) * (1 - 1e-6);
    for (const w of engine.globalModel.blob.weights) expect(w).toBeCloseTo((scaled + 0.1) / 2, 6);
    const ps = await parts(0);
    expect(ps.find((p) => p.name === 'a')!.reason).toMatch(/update L2 norm 6\.083 scaled to strategy\.normBound 1/);
    expect(ps.find((p) => p.name === 'b')!.reason).toBeUndefined();
  });

  it('norm-bound with krum: updates are bounded before they are spooled', async () => {
    const { engine, agents, finished } = setup({ rounds: 1, agentsPerRound: { min: 5 }, strategy: { name: 'multi-krum', f: 1, m: 4, normBound: 1 } }, ['a', 'b', 'c', 'd', 'e']);
    for (const [i, x] of Object.values(agents).entries()) {
      await until(() => trainTasks(x).length === 1);
      await submit(engine, x, trainTasks(x)[0]!, i === 4 ? -50 : 1, 10);
    }
    await finished;
    const scaled = (1 / Math.sqrt(N)) * (1 - 1e-6);
    for (const w of engine.globalModel.blob.weights) expect(w).toBeCloseTo(scaled, 6);
  });
});

describe('stopping a run mid-round', () => {
  it('cancels its invitees\' tasks and frees them for other runs at once', async () => {
    const { engine, agents, finished } = setup({ rounds: 1, agentsPerRound: { fraction: 1, min: 2 } }, ['a', 'b']);
    await until(() => agents.a!.tasks.length > 0 && agents.b!.tasks.length > 0);
    const registry = (engine as unknown as { core: { deps: { registry: AgentRegistry } } }).core.deps.registry;
    expect(registry.available()).toHaveLength(0);
    engine.stop('stopped by the test');
    await finished;
    expect(registry.available().map((a) => a.name)).toEqual(['a', 'b']);
    expect(agents.a!.tasks.at(-1)!.kind).toBe('cancel');
  });
});

