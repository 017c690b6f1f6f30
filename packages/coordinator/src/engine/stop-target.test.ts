/** stopAt judged on the federated evaluation (no central evaluation): on every agent's held-out rows, not the first ones'. */
import { afterEach, describe, expect, it } from 'vitest';
import { UPDATE_ENCODING, type TaskMsg } from '@fedge/proto';
import { parseRunConfig, type RunConfigInput } from '../config/run-config.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { createStrategy } from '../strategy/index.js';
import { AgentRegistry } from './agent-registry.js';
import { RunEngine } from './run-engine.js';
import { RunContext } from './run-context.js';

const N = 8;
const specs = [{ name: 'w', dtype: 'float32' as const, shape: [N] }];

interface FakeAgent { id: string; token: string; name: string; tasks: TaskMsg[] }

const engines: RunEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.stop('test over');
});

function setup(input: RunConfigInput, names: string[]) {
  const store = new MemoryStore();
  const registry = new AgentRegistry(store);
  const config = parseRunConfig({ centralEvaluation: false, roundDeadlineSeconds: 5, ...input });
  const run: RunRecord = { id: 'run-stop', config, status: 'pending', createdAt: new Date().toISOString(), round: 0, modelVersion: 0, rounds: [], versions: [] };
  const agents = names.map((name): FakeAgent => {
    const { agentId, sessionToken } = registry.join({ name, agentId: '', joinToken: '', backend: 'test', agentVersion: 't', numExamples: 10, labels: {} });
    const a: FakeAgent = { id: agentId, token: sessionToken, name, tasks: [] };
    registry.attach(agentId, { send: (t) => a.tasks.push(t), close: () => undefined });
    return a;
  });
  const engine = new RunEngine(new RunContext(run, store), { topology: {}, tensors: specs, weights: new Float32Array(N) }, {
    store,
    registry,
    strategy: createStrategy(config, { populationSize: () => names.length }),
  });
  engines.push(engine);
  return { engine, run, agents, finished: engine.execute() };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A result for `task`: training ones carry an update and, like an agent's, the evaluation of the model they started from. */
async function answer(engine: RunEngine, a: FakeAgent, task: TaskMsg, evalAccuracy: number): Promise<void> {
  const train = task.kind === 'train';
  const delta = new Float32Array(N).fill(0.1);
  const sink = await engine.beginUpload({
    agentId: a.id, sessionToken: a.token, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
    kind: train ? 'train' : 'evaluate', numExamples: train ? 10 : 0, tensors: train ? specs : [], totalBytes: train ? delta.byteLength : 0,
    encoding: train ? UPDATE_ENCODING : '',
    metrics: { ...(train ? { train_loss: 1 } : {}), eval_examples: 10, eval_loss: 1 - evalAccuracy, eval_accuracy: evalAccuracy },
  });
  if (train) sink.write(0, new Uint8Array(delta.buffer));
  await sink.commit();
}

/** Answers every agent's task of `round` (`kind`), agent k reporting accuracies[k] for the model it started from. */
async function answerRound(engine: RunEngine, agents: FakeAgent[], round: number, kind: 'train' | 'evaluate', accuracies: number[]): Promise<void> {
  const taskOf = (a: FakeAgent) => a.tasks.find((t) => t.kind === kind && t.round === round);
  await until(() => agents.every((a) => taskOf(a) !== undefined));
  for (const [k, a] of agents.entries()) await answer(engine, a, taskOf(a)!, accuracies[k]!);
}

describe('stopAt on the federated evaluation (sync)', () => {
  it('waits for every agent of the round: one agent above the target does not end the run, the union does', async () => {
    const input: RunConfigInput = { rounds: 5, targetAccuracy: 0.9, agentsPerRound: { min: 3, fraction: 1 } };
    const { engine, run, agents, finished } = setup(input, ['a', 'b', 'c']);
    // Round 1 trains from v0, round 2 from v1, ...: each result carries its agent's evaluation of that base version.
    await answerRound(engine, agents, 1, 'train', [0.1, 0.1, 0.1]);
    // v1: the first agent alone is at 1.0, the union is at (1 + 0.5 + 0.5) / 3 = 0.667, below 0.9.
    await answerRound(engine, agents, 2, 'train', [1, 0.5, 0.5]);
    await until(() => run.rounds.length === 2);
    expect(run.reachedTarget).toBeUndefined();
    expect(run.versions.find((v) => v.version === 1)!.federatedMetrics!.accuracy).toBeCloseTo(2 / 3, 10);
    // v2: every agent at 0.95.
    await answerRound(engine, agents, 3, 'train', [0.95, 0.95, 0.95]);
    await answerRound(engine, agents, 3, 'evaluate', [0.95, 0.95, 0.95]); // the final evaluation of v3
    await finished;
    expect(run.status).toBe('completed');
    expect(run.rounds).toHaveLength(3);
    expect(run.reachedTarget).toMatchObject({ version: 2, round: 2, metric: 'accuracy' });
    expect(run.reachedTarget!.value).toBeCloseTo(0.95, 10);
    // What the run says it reached is what the version's record says.
    expect(run.versions.find((v) => v.version === 2)!.federatedMetrics!.accuracy).toBeCloseTo(run.reachedTarget!.value!, 10);
  });

  it('the final evaluation judges the last version once all its results are in', async () => {
    const { engine, run, agents, finished } = setup({ rounds: 2, targetAccuracy: 0.9, agentsPerRound: { min: 3, fraction: 1 } }, ['a', 'b', 'c']);
    await answerRound(engine, agents, 1, 'train', [0.1, 0.1, 0.1]);
    await answerRound(engine, agents, 2, 'train', [0.5, 0.5, 0.5]);
    // v2, the last version: one agent above the target is not enough, the three together are.
    await answerRound(engine, agents, 2, 'evaluate', [1, 0.85, 0.9]);
    await finished;
    expect(run.reachedTarget).toMatchObject({ version: 2, round: 2, metric: 'accuracy' });
    expect(run.reachedTarget!.value).toBeCloseTo(0.9166666666666666, 10);
  });
});
