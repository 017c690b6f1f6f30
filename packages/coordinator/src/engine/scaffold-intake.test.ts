/** SCAFFOLD through the engine (tiny model, in-memory agent channels): tasks name the server variate, intake takes only [delta | variate delta], bad ones are refused like bad updates. */
import { afterEach, describe, expect, it } from 'vitest';
import { RejectedUpdateError, UPDATE_ENCODING, type TaskMsg } from '@fedge/proto';
import { parseRunConfig } from '../config/run-config.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { createStrategy } from '../strategy/index.js';
import { AgentRegistry } from './agent-registry.js';
import { RunEngine } from './run-engine.js';
import { RunContext } from './run-context.js';

const N = 37;
const specs = [{ name: 'w', dtype: 'float32' as const, shape: [N] }];
interface FakeAgent { id: string; token: string; name: string; tasks: TaskMsg[] }

const engines: RunEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.stop('test over');
});

function setup(names: string[]) {
  const store = new MemoryStore();
  const registry = new AgentRegistry(store);
  const config = parseRunConfig({ centralEvaluation: false, roundDeadlineSeconds: 5, rounds: 2, strategy: { name: 'scaffold' } });
  const run: RunRecord = { id: 'run-scaffold', config, status: 'pending', createdAt: new Date().toISOString(), round: 0, modelVersion: 0, rounds: [], versions: [] };
  const agents = names.map((name): FakeAgent => {
    const { agentId, sessionToken } = registry.join({ name, agentId: '', joinToken: '', backend: 'test', agentVersion: 't', numExamples: 10, labels: {} });
    const a: FakeAgent = { id: agentId, token: sessionToken, name, tasks: [] };
    registry.attach(agentId, { send: (t) => a.tasks.push(t), close: () => undefined });
    return a;
  });
  const engine = new RunEngine(new RunContext(run, store), { topology: {}, tensors: specs, weights: new Float32Array(N) }, {
    store, registry, strategy: createStrategy(config, { populationSize: () => names.length }),
  });
  engines.push(engine);
  return { engine, agents, finished: engine.execute(), store };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const trainTask = (a: FakeAgent, round: number): TaskMsg | undefined => a.tasks.find((t) => t.kind === 'train' && t.round === round);

async function submit(engine: RunEngine, a: FakeAgent, task: TaskMsg, values: Float32Array, flag: boolean) {
  try {
    const sink = await engine.beginUpload({
      agentId: a.id, sessionToken: a.token, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
      kind: 'train', numExamples: 10, tensors: specs, totalBytes: values.byteLength, encoding: UPDATE_ENCODING, metrics: {},
      ...(flag ? { controlVariateDelta: true } : {}),
    });
    sink.write(0, new Uint8Array(values.buffer));
    return await sink.commit();
  } catch (err) {
    if (err instanceof RejectedUpdateError) return { accepted: false, reason: err.reason, message: err.message };
    throw err;
  }
}

const stacked = (dy: number, dc: number): Float32Array => {
  const v = new Float32Array(2 * N).fill(dy);
  v.fill(dc, N);
  return v;
};

describe('scaffold in the engine', () => {
  it('names the variate in every task, refuses payloads without it, of the wrong size or with a NaN variate, and steps x and c', async () => {
    const { engine, agents, finished, store } = setup(['a', 'b', 'c', 'd']);
    const [a, b, c, d] = agents as [FakeAgent, FakeAgent, FakeAgent, FakeAgent];
    await until(() => agents.every((x) => trainTask(x, 1)));
    const sha1 = trainTask(a, 1)!.config.controlVariateSha256!;
    expect(sha1).toMatch(/^[0-9a-f]{64}$/);
    expect(agents.every((x) => trainTask(x, 1)!.config.controlVariateSha256 === sha1)).toBe(true);
    expect(engine.strategy.controlVariates!.find(sha1)!.weights).toEqual(new Float32Array(N)); // c starts at 0

    // Round 1: three malformed updates and one good one (below minResults 2: no new model, c unchanged).
    expect(await submit(engine, a, trainTask(a, 1)!, new Float32Array(N).fill(1), false)).toMatchObject({ accepted: false, reason: 'variate_mismatch' });
    expect(await submit(engine, b, trainTask(b, 1)!, new Float32Array(N).fill(1), true)).toMatchObject({ accepted: false, reason: 'size_mismatch' });
    const nan = stacked(1, 2);
    nan[N + 5] = Number.NaN;
    expect(await submit(engine, c, trainTask(c, 1)!, nan, true)).toMatchObject({ accepted: false, reason: 'non_finite' });
    expect(await submit(engine, d, trainTask(d, 1)!, stacked(1, 2), true)).toMatchObject({ accepted: true });

    // Round 2: all four send [dy | dc]; x moves by the unweighted mean dy (lr_g 1), c by |S|/N = 4/4 of the mean dc.
    await until(() => agents.every((x) => trainTask(x, 2)));
    const t2 = trainTask(a, 2)!;
    expect(t2.modelVersion).toBe(0);
    expect(t2.config.controlVariateSha256).toBe(sha1);
    const sends: [FakeAgent, number, number][] = [[a, 1, -1], [b, 2, -2], [c, 3, -3], [d, 6, 2]];
    for (const [x, dy, dc] of sends) expect(await submit(engine, x, trainTask(x, 2)!, stacked(dy, dc), true)).toMatchObject({ accepted: true });
    await finished;
    const run = engine.run;
    expect(run.rounds.map((r) => r.status)).toEqual(['failed', 'completed']);
    expect((await engine.ctx.listParticipants({ round: run.rounds[0]!.round, limit: 100, offset: 0 })).participants.map((p) => p.reason ?? p.outcome).sort().join(' ')).toMatch(/non_finite.*size_mismatch.*variate_mismatch/s);
    expect(Array.from(engine.globalModel.blob.weights)).toEqual(new Array(N).fill(3));
    const c2 = engine.strategy.controlVariates!.current();
    expect(Array.from(c2.blob.weights)).toEqual(new Array(N).fill(-1));
    // The record names that variate, stored in the model store (what a restarted coordinator restores).
    expect(run.scaffoldState).toMatchObject({ step: 1, numParams: N, sha256: c2.sha256 });
    expect((await store.getModel(c2.sha256))!.weights).toEqual(c2.blob.weights);
  });
});
