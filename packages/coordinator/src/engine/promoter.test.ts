/** Promoter: a (re)connecting agent gets the promoted version of every run that has one; the runs are listed once. */
import { describe, expect, it } from 'vitest';
import { blobDigest, type ModelBlob, type TaskMsg } from '@fedge/proto';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { ModelSigner } from '../signing-key.js';
import type { AgentRegistry } from './agent-registry.js';
import { makeGlobalModel } from './global-model.js';
import { Promoter } from './promoter.js';
import { RunContext } from './run-context.js';

const blob = (seed: number): ModelBlob => ({ topology: { t: 'x' }, tensors: [{ name: 'w', shape: [4] }], weights: new Float32Array(4).fill(seed) }) as ModelBlob;
const blobs = [blob(0), blob(1), blob(2)];

function record(id: string, createdAt: string, extra: Partial<RunRecord> = {}): RunRecord {
  return {
    id, config: { seed: 1 } as RunRecord['config'], status: 'completed', createdAt, round: 2, modelVersion: 2, rounds: [],
    versions: blobs.map((b, v) => ({ version: v, sha256: blobDigest(b), round: v, createdAt })),
    ...extra,
  };
}

async function setup(runs: RunRecord[]) {
  const store = new MemoryStore();
  for (const r of runs) await store.createRun(r);
  const announced: { task: TaskMsg; only?: readonly string[] }[] = [];
  const registry = {
    list: () => [{ id: 'a1', name: 'edge-1', status: 'online' }],
    announce: (task: TaskMsg, only?: readonly string[]) => (announced.push({ task, ...(only ? { only } : {}) }), 1),
  } as unknown as AgentRegistry;
  let listings = 0;
  const promoter = new Promoter({
    registry,
    signer: ModelSigner.ephemeral(),
    runContext: async (id) => ({ ctx: new RunContext((await store.getRun(id))!, store) }),
    storedVersion: async (run, version) => makeGlobalModel(run.id, version, blobs[version]!),
    listRuns: async () => (listings++, store.listRuns()),
  });
  return { promoter, announced, listings: () => listings };
}

describe('Promoter.announceTo', () => {
  it('tells a reconnecting agent each promoted run\'s version (stored and newly promoted), reading the run list once', async () => {
    const stored = record('run-a', '1', { promotion: { version: 1, history: [] } });
    const { promoter, announced, listings } = await setup([stored, record('run-b', '2'), record('run-c', '3')]);
    await promoter.announceTo('a1');
    expect(announced.map((x) => [x.task.runId, x.task.modelVersion, x.only])).toEqual([['run-a', 1, ['a1']]]);
    announced.length = 0;
    await promoter.promote('run-c', { version: 2 });
    expect(announced.map((x) => [x.task.runId, x.task.modelVersion])).toEqual([['run-c', 2]]);
    announced.length = 0;
    await promoter.announceTo('a1');
    await promoter.announceTo('a2');
    expect(announced.map((x) => [x.task.runId, x.task.modelVersion, x.only])).toEqual([
      ['run-a', 1, ['a1']], ['run-c', 2, ['a1']], ['run-a', 1, ['a2']], ['run-c', 2, ['a2']],
    ]);
    expect(listings()).toBe(1);
  });
});
