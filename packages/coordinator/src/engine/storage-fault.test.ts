/** A data directory that stops taking writes (simulated ENOSPC through the store) suspends a run, resumable, instead of failing it. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageError, UPDATE_ENCODING, type ModelBlob, type TaskMsg } from '@fedge/proto';
import { parseRunConfig } from '../config/run-config.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { storageError } from '../store/storage-error.js';
import { createStrategy } from '../strategy/index.js';
import { AgentRegistry } from './agent-registry.js';
import { RunContext } from './run-context.js';
import { RunEngine } from './run-engine.js';
import { DiskSpool } from './update-spool.js';
import { PreparingRuns } from './prepare.js';

const N = 8;
const specs = [{ name: 'w', dtype: 'float32' as const, shape: [N] }];

/** What fs calls throw on a full disk. */
const enospc = (file: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: 'ENOSPC', errno: -28, syscall: 'write', path: file });

/** A store whose disk can fill up: while `full`, every write throws ENOSPC as node:fs would. */
class FillableStore extends MemoryStore {
  full = false;
  /** Space comes back after one refused write (a disk that another process was filling). */
  once = false;
  writesRefused = 0;
  private refuse(): void {
    if (!this.full) return;
    this.writesRefused++;
    if (this.once) this.full = false;
    throw enospc('/var/lib/fedge/fedge.db-wal');
  }
  override async saveRun(run: RunRecord): Promise<void> {
    this.refuse();
    return super.saveRun(run);
  }
  override async putModel(sha256: string, blob: ModelBlob): Promise<void> {
    this.refuse();
    return super.putModel(sha256, blob);
  }
}

interface FakeAgent { id: string; token: string; name: string; tasks: TaskMsg[] }

const engines: RunEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.stop('test over');
});

function start(store: FillableStore, spool: DiskSpool, run: RunRecord, names: string[]) {
  const registry = new AgentRegistry(store);
  const agents = names.map((name): FakeAgent => {
    const { agentId, sessionToken } = registry.join({ name, agentId: '', joinToken: '', backend: 'test', agentVersion: 't', numExamples: 10, labels: {} });
    const a: FakeAgent = { id: agentId, token: sessionToken, name, tasks: [] };
    registry.attach(agentId, { send: (t) => a.tasks.push(t), close: () => undefined });
    return a;
  });
  const faults: StorageError[] = [];
  const engine: RunEngine = new RunEngine(new RunContext(run, store), { topology: {}, tensors: specs, weights: new Float32Array(N) }, {
    store,
    registry,
    spool,
    strategy: createStrategy(run.config, { populationSize: () => names.length }),
    // What the coordinator does: suspend every run (here the one).
    onStorageFault: (f) => {
      faults.push(f);
      engine.suspend(f);
    },
  });
  engines.push(engine);
  return { engine, agents, faults, finished: engine.execute() };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const trainTasks = (a: FakeAgent): TaskMsg[] => a.tasks.filter((t) => t.kind === 'train');

async function submit(engine: RunEngine, a: FakeAgent, task: TaskMsg, value: number) {
  const delta = new Float32Array(N).fill(value);
  const sink = await engine.beginUpload({
    agentId: a.id, sessionToken: a.token, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
    kind: 'train', numExamples: 10, tensors: specs, totalBytes: delta.byteLength, encoding: UPDATE_ENCODING, metrics: { train_loss: 1 },
  });
  sink.write(0, new Uint8Array(delta.buffer));
  return sink.commit();
}

/** Answers the final evaluation round (or it would wait for its deadline). */
async function evaluate(engine: RunEngine, agents: FakeAgent[]): Promise<void> {
  await until(() => agents.every((a) => a.tasks.some((t) => t.kind === 'evaluate')));
  for (const a of agents) {
    const t = a.tasks.find((x) => x.kind === 'evaluate')!;
    const sink = await engine.beginUpload({
      agentId: a.id, sessionToken: a.token, taskId: t.taskId, runId: t.runId, round: t.round, modelVersion: t.modelVersion,
      kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: {},
    });
    await sink.commit();
  }
}

async function trainRound(engine: RunEngine, agents: FakeAgent[], round: number): Promise<void> {
  await until(() => agents.every((a) => trainTasks(a).some((t) => t.round === round)));
  for (const a of agents) expect(await submit(engine, a, trainTasks(a).find((t) => t.round === round)!, 0.5)).toMatchObject({ accepted: true });
}

describe('a full data directory', () => {
  it('suspends the run (stored as running, not failed, no crash) and a restart with space resumes it to the end', async () => {
    const store = new FillableStore();
    const spool = new DiskSpool(mkdtempSync(path.join(tmpdir(), 'fedge-spool-')));
    const config = parseRunConfig({ centralEvaluation: false, roundDeadlineSeconds: 30, rounds: 3, strategy: { name: 'fedavg' }, agentsPerRound: { min: 2, fraction: 1 } });
    const run: RunRecord = { id: 'run-disk', config, status: 'pending', createdAt: new Date().toISOString(), round: 0, modelVersion: 0, rounds: [], versions: [] };
    await store.createRun(run);
    const first = start(store, spool, run, ['a', 'b']);
    const [a, b] = first.agents as [FakeAgent, FakeAgent];
    await trainRound(first.engine, [a, b], 1);
    await until(() => first.engine.run.round === 1);

    // The disk fills during round 2: the first accepted update cannot be recorded.
    store.full = true;
    await until(() => trainTasks(a).some((t) => t.round === 2));
    const refused = await submit(first.engine, a, trainTasks(a).find((t) => t.round === 2)!, 0.5).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(StorageError);
    expect(refused).toMatchObject({ code: 'E_STORAGE', path: '/var/lib/fedge/fedge.db-wal' });
    expect((refused as Error).message).toMatch(/no space left on the device \(ENOSPC\)/);
    // execute() resolves (before: its final save threw again and the rejection took the process down).
    const ended = await first.finished;
    expect(first.faults).toHaveLength(1);
    expect(ended.status).toBe('running');
    expect(ended.statusMessage).toMatch(/^suspended at round 2 \(E_STORAGE\): cannot write \/var\/lib\/fedge\/fedge\.db-wal/);
    expect(first.engine.isFinished()).toBe(true);
    expect(store.writesRefused).toBeGreaterThanOrEqual(2); // the update's record and the run's end
    const stored = (await store.getRun(run.id))!;
    expect(stored).toMatchObject({ status: 'running', round: 1, modelVersion: 1 });
    expect(stored.rounds.map((r) => r.status)).toEqual(['completed']);

    // Space is freed and the coordinator restarts: the run resumes at round 2 and completes.
    store.full = false;
    const resumed = new RunContext(stored, store);
    resumed.trimToSaved();
    const second = start(store, spool, stored, ['a', 'b']);
    await trainRound(second.engine, second.agents, 2);
    await trainRound(second.engine, second.agents, 3);
    await evaluate(second.engine, second.agents);
    const done = await second.finished;
    expect(done.status).toBe('completed');
    expect(done.rounds.map((r) => [r.round, r.status])).toEqual([[1, 'completed'], [2, 'completed'], [3, 'completed']]);
    expect((await store.getRun(run.id))!.status).toBe('completed');
  });
});

describe('storageError', () => {
  it('names the path, the errno and the free space; other errors pass through', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-free-'));
    const e = storageError(enospc(path.join(dir, 'models', 'x.bin')), dir)!;
    expect(e).toBeInstanceOf(StorageError);
    expect(e.path).toBe(path.join(dir, 'models', 'x.bin'));
    expect(e.freeBytes).toBeGreaterThan(0); // statfs of the nearest existing ancestor
    expect(e.message).toMatch(/free there/);
    // SQLite (node-sqlite3-wasm) reports a write that hit ENOSPC as SQLITE_IOERR, without an errno.
    const db = storageError(new Error('disk I/O error'), path.join(dir, 'fedge.db'))!;
    expect(db).toMatchObject({ code: 'E_STORAGE', path: path.join(dir, 'fedge.db') });
    expect(storageError(new Error('database disk image is malformed'), dir)).toBeUndefined();
    expect(storageError(new Error('boom'), dir)).toBeUndefined();
  });
});

describe('a full data directory during the statistics step', () => {
  it('leaves the run to prepare again on restart instead of storing it as failed', async () => {
    const store = new FillableStore();
    const config = parseRunConfig({ centralEvaluation: false, rounds: 1, agentsPerRound: { min: 1 }, waitForAgentsSeconds: 5 });
    const run: RunRecord = { id: 'run-prep', config, status: 'pending', createdAt: new Date().toISOString(), round: 0, modelVersion: 0, rounds: [], versions: [] };
    await store.createRun(run);
    const faults: StorageError[] = [];
    const preparing = new PreparingRuns({
      registry: new AgentRegistry(store),
      resumeOnRestart: true,
      launch: () => Promise.reject(new Error('not reached: no agent reports data')),
      strategyFor: (c) => createStrategy(c, { populationSize: () => 0 }),
      onStorageFault: (f) => faults.push(f),
    });
    // The first save (status waiting) hits the full disk; the next one would fit.
    store.full = true;
    store.once = true;
    preparing.start(new RunContext(run, store), undefined);
    await until(() => !preparing.has(run.id));
    expect(faults.map((f) => f.code)).toEqual(['E_STORAGE']);
    // Before: the step failed the run and that save fit, so the run was stored as failed for good.
    expect((await store.getRun(run.id))!.status).toBe('pending');
    expect(run.statusMessage).toMatch(/^suspended in its statistics step \(E_STORAGE\)/);
  });
});
