import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blobDigest, type ModelBlob } from '@fedge/proto';
import { MemoryStore } from '../store/memory-store.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { RunRecord, Store } from '../store/store.js';
import { RunContext } from './run-context.js';
import { ModelRetention, bestVersion, planRetention } from './retention.js';

const blob = (seed: number, n = 1024): ModelBlob => ({ topology: { t: 'x' }, tensors: [{ name: 'w', shape: [n] }], weights: new Float32Array(n).fill(seed) }) as ModelBlob;

function record(id: string, blobs: ModelBlob[], extra: Partial<RunRecord> = {}): RunRecord {
  return {
    id,
    config: { seed: 1 } as RunRecord['config'],
    status: 'running',
    createdAt: '',
    round: blobs.length - 1,
    modelVersion: blobs.length - 1,
    rounds: [],
    versions: blobs.map((b, v) => ({ version: v, sha256: blobDigest(b), round: v, createdAt: '' })),
    ...extra,
  };
}

async function seed(store: Store, run: RunRecord, blobs: ModelBlob[]): Promise<RunContext> {
  for (const b of blobs) await store.putModel(blobDigest(b), b);
  await store.createRun(run);
  return new RunContext(structuredClone(run), store);
}

const retention = (store: Store, served: number[] = []): ModelRetention =>
  new ModelRetention({ store, defaultKeepLast: 3, served: () => served, liveShas: () => new Set() });

describe('planRetention', () => {
  const blobs = Array.from({ length: 10 }, (_, i) => blob(i, 4));
  it('keeps the last K and every pinned version, collects the rest', () => {
    const run = record('r', blobs, {
      promotion: { version: 2, previous: 1, canary: { version: 4, fraction: 0.5, agents: [], agentNames: [] }, history: [] },
      reachedTarget: { version: 5, round: 5, accuracy: 0.9, seconds: 1 },
    });
    run.versions[3]!.centralAccuracy = 0.99;
    run.versions[8]!.centralAccuracy = 0.5;
    const plan = planRetention(run, 2, [0]);
    expect(plan.collect).toEqual([6, 7]);
    expect(Object.fromEntries(plan.keep.map((k) => [k.version, k.reasons.join('+')]))).toEqual({
      0: 'served', 1: 'previous', 2: 'promoted', 3: 'best', 4: 'canary', 5: 'target', 8: 'recent', 9: 'recent+current',
    });
  });
  it('keeps everything with "all" and never lists a collected version again', () => {
    const run = record('r', blobs);
    expect(planRetention(run, 'all').collect).toEqual([]);
    run.versions[0]!.collected = { at: '', keepLast: 3 };
    expect(planRetention(run, 3).collect).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it('best falls back to federated accuracy', () => {
    const run = record('r', blobs.slice(0, 3));
    run.versions[1]!.federatedAccuracy = 0.7;
    expect(bestVersion(run)).toBe(1);
    expect(bestVersion(record('r', blobs.slice(0, 3)))).toBeUndefined();
  });
});

describe.each([
  ['memory', () => ({ store: new MemoryStore() as Store, done: () => {} })],
  [
    'sqlite',
    () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'fedge-retention-'));
      const store = SqliteStore.open(dir);
      return { store: store as Store, dir, done: () => (store.close(), rmSync(dir, { recursive: true, force: true })) };
    },
  ],
])('ModelRetention with the %s store', (_name, open) => {
  let done: () => void = () => {};
  afterEach(() => done());

  it('marks, saves, then deletes: freed bytes, saved record says collected, kept blobs readable', async () => {
    const s = open();
    done = s.done;
    const blobs = Array.from({ length: 8 }, (_, i) => blob(i));
    const ctx = await seed(s.store, record('r1', blobs), blobs);
    const res = await retention(s.store).collect(ctx);
    expect(res.collected.map((c) => c.version)).toEqual([0, 1, 2, 3, 4]);
    expect(res.freedBytes).toBe(5 * 1024 * 4);
    const saved = (await s.store.getRun('r1'))!;
    expect(saved.versions.filter((v) => v.collected).map((v) => v.version)).toEqual([0, 1, 2, 3, 4]);
    expect(saved.versions[0]!.collected!.keepLast).toBe(3);
    // The invariant: every version not marked collected has its blob.
    for (const v of saved.versions) expect(!!(await s.store.getModel(v.sha256))).toBe(!v.collected);
    if ('dir' in s) expect(existsSync(path.join(s.dir!, 'models', `${blobs[0] && blobDigest(blobs[0])}.bin`))).toBe(false);
    // A second pass finds nothing more.
    expect((await retention(s.store).collect(ctx)).collected).toEqual([]);
  });

  it('dry run changes nothing and reports what would go', async () => {
    const s = open();
    done = s.done;
    const blobs = Array.from({ length: 5 }, (_, i) => blob(i));
    const ctx = await seed(s.store, record('r1', blobs), blobs);
    const res = await retention(s.store).collect(ctx, { dryRun: true });
    expect(res.collected.map((c) => c.version)).toEqual([0, 1]);
    expect(res.freedBytes).toBe(2 * 4096);
    for (const b of blobs) expect(await s.store.getModel(blobDigest(b))).toBeDefined();
    expect((await s.store.getRun('r1'))!.versions.some((v) => v.collected)).toBe(false);
  });

  it('never deletes a blob another run still names (content-addressed sharing)', async () => {
    const s = open();
    done = s.done;
    const blobs = Array.from({ length: 6 }, (_, i) => blob(i));
    const ctx = await seed(s.store, record('r1', blobs), blobs);
    // r2 starts from the same version 0 (same model and seed) and keeps it.
    await s.store.createRun(record('r2', [blobs[0]!]));
    const res = await retention(s.store).collect(ctx);
    expect(res.collected.map((c) => c.version)).toEqual([0, 1, 2]);
    expect(res.collected[0]!.bytes).toBe(0);
    expect(await s.store.getModel(blobDigest(blobs[0]!))).toBeDefined();
    expect(await s.store.getModel(blobDigest(blobs[1]!))).toBeUndefined();
  });

  it('a crash between marking and deleting leaves only an unreferenced blob, which the retry pass deletes', async () => {
    const s = open();
    done = s.done;
    const blobs = Array.from({ length: 6 }, (_, i) => blob(i));
    const ctx = await seed(s.store, record('r1', blobs), blobs);
    // The first half of a pass: marked and saved, then the process died before any delete.
    ctx.markCollected([0, 1], 3);
    await ctx.persist();
    for (const v of (await s.store.getRun('r1'))!.versions) if (!v.collected) expect(await s.store.getModel(v.sha256)).toBeDefined();
    const res = await retention(s.store).collect(ctx, { retry: true });
    expect(res.collected.map((c) => c.version)).toEqual([2]);
    expect(res.freedBytes).toBe(3 * 4096);
    for (const i of [0, 1, 2]) expect(await s.store.getModel(blobDigest(blobs[i]!))).toBeUndefined();
  });
});
