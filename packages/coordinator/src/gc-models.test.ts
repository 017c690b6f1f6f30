/** Coordinator.gcModels (fedge model gc): every run of the store, or one, with the given keepLast; dry runs change nothing. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blobDigest, type ModelBlob } from '@fedge/proto';
import { Coordinator } from './coordinator.js';
import { MemoryStore } from './store/memory-store.js';
import type { RunRecord } from './store/store.js';

const blob = (seed: number): ModelBlob => ({ topology: { t: 'x' }, tensors: [{ name: 'w', shape: [8] }], weights: new Float32Array(8).fill(seed) }) as ModelBlob;

const store = new MemoryStore();
const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-gc-')), store });
afterAll(() => coord.close());

async function seedRun(id: string, createdAt: string, seeds: number[]): Promise<void> {
  for (const s of seeds) await store.putModel(blobDigest(blob(s)), blob(s));
  const run: RunRecord = {
    id, config: { seed: 1 } as RunRecord['config'], status: 'completed', createdAt, round: seeds.length - 1, modelVersion: seeds.length - 1, rounds: [],
    versions: seeds.map((s, v) => ({ version: v, sha256: blobDigest(blob(s)), round: v, createdAt })),
  };
  await store.createRun(run);
}

describe('gcModels', () => {
  it('collects every stored run in listing order, and only the named one with runId', async () => {
    await seedRun('run-g1', '2026-01-01', [10, 11, 12, 13]);
    await seedRun('run-g2', '2026-01-02', [20, 21, 22]);
    const dry = await coord.gcModels({ keepLast: 1, dryRun: true });
    expect(dry.map((r) => [r.runId, r.collected.map((c) => c.version)])).toEqual([['run-g1', [0, 1, 2]], ['run-g2', [0, 1]]]);
    expect(await store.getModel(blobDigest(blob(10)))).toBeDefined();
    const one = await coord.gcModels({ runId: 'run-g2', keepLast: 1 });
    expect(one.map((r) => [r.runId, r.collected.map((c) => c.version)])).toEqual([['run-g2', [0, 1]]]);
    const all = await coord.gcModels({ keepLast: 1 });
    expect(all.map((r) => [r.runId, r.collected.map((c) => c.version)])).toEqual([['run-g1', [0, 1, 2]], ['run-g2', []]]);
    expect(all[0]!.freedBytes).toBeGreaterThan(0);
    expect(await store.getModel(blobDigest(blob(10)))).toBeUndefined();
    expect(await store.getModel(blobDigest(blob(13)))).toBeDefined();
    expect((await store.getRun('run-g1'))!.versions.filter((v) => v.collected).map((v) => v.version)).toEqual([0, 1, 2]);
  });
});
