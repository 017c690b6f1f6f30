/**
 * Server optimizer strategies through the Strategy interface (createStrategy from a run config): sync aggregate,
 * the buffered async step and the DP wrapper against float64 references of the papers' updates over several rounds;
 * state through a MemoryStore round trip (RunContext: blob in the model store, sha256 in the record).
 */
import { createRng, type GaussianSampler } from '@fedge/proto';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { RunContext } from '../engine/run-context.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { createStrategy } from './index.js';
import { ServerOptStrategy } from './server-opt.js';
import type { AggregateView, Strategy } from './strategy.js';

const deps = { populationSize: () => 4 };
const N = 257;
const ROUNDS = 6;

type Name = 'fedavgm' | 'fedadam' | 'fedyogi' | 'fedadagrad';

/** Float64 reference of one server update, written from the papers (Hsu et al. 2019; Reddi et al. 2021, Algorithm 2, v_{-1} = tau^2). */
function reference(name: Name, w0: Float32Array, o: { lr: number; momentum?: number; beta1?: number; beta2?: number; tau?: number }) {
  const w = Float64Array.from(w0);
  const m = new Float64Array(w.length);
  const v = new Float64Array(w.length).fill((o.tau ?? 0) ** 2);
  return {
    w,
    step(d: Float64Array): void {
      for (let i = 0; i < w.length; i++) {
        if (name === 'fedavgm') {
          m[i] = o.momentum! * m[i]! + d[i]!;
          w[i] = w[i]! + o.lr * m[i]!;
          continue;
        }
        m[i] = o.beta1! * m[i]! + (1 - o.beta1!) * d[i]!;
        const g2 = d[i]! * d[i]!;
        if (name === 'fedadam') v[i] = o.beta2! * v[i]! + (1 - o.beta2!) * g2;
        else if (name === 'fedyogi') v[i] = v[i]! - (1 - o.beta2!) * g2 * Math.sign(v[i]! - g2);
        else v[i] = v[i]! + g2;
        w[i] = w[i]! + (o.lr * m[i]!) / (Math.sqrt(v[i]!) + o.tau!);
      }
    },
  };
}

function gauss(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** An aggregate of `k` agents' deltas with example counts, as the streaming aggregate would hold it (float32 mean). */
function roundOf(rng: () => number, k: number): { view: AggregateView; mean64: Float64Array; results: { agentId: string; numExamples: number; weight: number; metrics: Record<string, number> }[] } {
  const sum = new Float64Array(N);
  let total = 0;
  const results = [];
  for (let a = 0; a < k; a++) {
    const n = 10 + Math.floor(rng() * 90);
    for (let i = 0; i < N; i++) sum[i] += n * 0.05 * gauss(rng);
    total += n;
    results.push({ agentId: `a${a}`, numExamples: n, weight: n, metrics: {} });
  }
  const mean32 = Float32Array.from(sum, (x) => x / total);
  return { view: { count: k, totalWeight: total, mean: () => mean32.slice() }, mean64: Float64Array.from(mean32), results };
}

function expectClose(actual: Float32Array, expected: Float64Array): void {
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (1e-6 + Math.abs(expected[i]!)));
  expect(worst).toBeLessThan(1e-4);
}

const CASES: { name: Name; strategy: Record<string, unknown>; ref: { lr: number; momentum?: number; beta1?: number; beta2?: number; tau?: number } }[] = [
  { name: 'fedavgm', strategy: { name: 'fedavgm' }, ref: { lr: 1, momentum: 0.9 } },
  { name: 'fedavgm', strategy: { name: 'fedavgm', serverLearningRate: 0.7, momentum: 0.5 }, ref: { lr: 0.7, momentum: 0.5 } },
  { name: 'fedadam', strategy: { name: 'fedadam' }, ref: { lr: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 } },
  { name: 'fedadam', strategy: { name: 'fedadam', serverLearningRate: 0.1, beta1: 0.8, beta2: 0.9, tau: 1e-2 }, ref: { lr: 0.1, beta1: 0.8, beta2: 0.9, tau: 1e-2 } },
  { name: 'fedyogi', strategy: { name: 'fedyogi' }, ref: { lr: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 } },
  { name: 'fedadagrad', strategy: { name: 'fedadagrad' }, ref: { lr: 1e-2, beta1: 0, tau: 1e-3 } },
  { name: 'fedadagrad', strategy: { name: 'fedadagrad', beta1: 0.9, tau: 0.05 }, ref: { lr: 1e-2, beta1: 0.9, tau: 0.05 } },
];

describe('server optimizer strategies vs float64 references', () => {
  it.each(CASES)('$name $strategy: sync rounds (aggregate = server step on the weighted mean)', ({ name, strategy, ref }) => {
    const s = createStrategy(parseRunConfig({ strategy }), deps);
    expect(s).toBeInstanceOf(ServerOptStrategy);
    expect(s.name).toBe(name);
    const rng = createRng(11);
    let w = Float32Array.from({ length: N }, () => gauss(rng));
    const r = reference(name, w, ref);
    for (let t = 0; t < ROUNDS; t++) {
      const round = roundOf(rng, 3);
      const out = s.aggregate(w, round.view, round.results, []);
      if (!out.ok) throw new Error(out.reason);
      r.step(round.mean64);
      expectClose(out.weights, r.w);
      w = out.weights;
    }
    expect((s as ServerOptStrategy).step).toBe(ROUNDS);
  });

  it.each(CASES.filter((c) => ['fedavgm', 'fedadam'].includes(c.name)))('$name $strategy: async (the FedBuff step is the pseudo-gradient)', ({ name, strategy, ref }) => {
    const s = createStrategy(parseRunConfig({ strategy, mode: 'async', async: { bufferSize: 2 } }), deps);
    const rng = createRng(5);
    let w = Float32Array.from({ length: N }, () => gauss(rng));
    const r = reference(name, w, ref);
    for (let t = 0; t < ROUNDS; t++) {
      const round = roundOf(rng, 2);
      // A stale update: its weight is discounted below its examples, so the FedBuff step is mean * W / examples.
      round.results[1]!.weight /= 2;
      const examples = round.results.reduce((x, a) => x + a.numExamples, 0);
      const W = round.results.reduce((x, a) => x + a.weight, 0);
      const view = { ...round.view, totalWeight: W };
      const out = s.aggregateBuffered(w, view, round.results, []);
      if (!out.ok) throw new Error(out.reason);
      const scaled = Float32Array.from(round.view.mean(), (x) => Math.fround(x * Math.fround(W / examples)));
      r.step(Float64Array.from(scaled));
      expectClose(out.weights, r.w);
      w = out.weights;
    }
  });

  it.each(CASES.filter((c) => c.name !== 'fedavgm').slice(0, 3))('$name under central DP: the noised mean feeds the server step', ({ name, strategy, ref }) => {
    const zero = { next: () => 0 } as unknown as GaussianSampler;
    const s = createStrategy(parseRunConfig({ strategy, privacy: { mode: 'central', clipNorm: 1, noiseMultiplier: 1.1, delta: 1e-5 }, agentsPerRound: { fraction: 0.5, min: 1 } }), { ...deps, noise: zero });
    expect(s.name).toBe(`dp-${name}`);
    s.selectAgents([{ id: 'a', name: 'a', numExamples: 1 }], () => 0); // fixes D = q * N = 2
    const rng = createRng(3);
    let w = Float32Array.from({ length: N }, () => gauss(rng));
    const r = reference(name, w, ref);
    for (let t = 0; t < 3; t++) {
      const round = roundOf(rng, 3);
      for (const x of round.results) x.weight = 1;
      const view = { ...round.view, totalWeight: 3 };
      const out = s.aggregate(w, view, round.results, []);
      if (!out.ok) throw new Error(out.reason);
      // (sum of weight-1 updates + 0 noise) / D, computed as the wrapper does (float32 mean * count / D).
      r.step(Float64Array.from(Float32Array.from(round.view.mean(), (x) => (x * 3) / 2)));
      expectClose(out.weights, r.w);
      w = out.weights;
    }
    expect(s.snapshot?.()).toMatchObject({ privacyState: { steps: 3 }, serverOptState: { name, step: 3 } });
  });

  it('fedprox is FedAvg on the server, recorded under its name (dp-fedprox under DP)', () => {
    const s = createStrategy(parseRunConfig({ strategy: { name: 'fedprox' } }), deps);
    expect(s.name).toBe('fedprox');
    expect(Array.from(s.serverStep(new Float32Array([1, 1]), new Float32Array([2, -2])))).toEqual([3, -1]);
    expect(s.snapshot?.() ?? {}).toEqual({});
    const dp = createStrategy(parseRunConfig({ strategy: { name: 'fedprox', proximalMu: 0.1 }, privacy: { mode: 'local', clipNorm: 1, noiseMultiplier: 1, delta: 1e-5 } }), deps);
    expect(dp.name).toBe('fedprox-local-dp');
  });
});

describe('server optimizer state: a blob in the model store, its sha256 in the record, restored on resume', () => {
  function run(strategy: Record<string, unknown>): RunRecord {
    return { id: 'run-opt', config: parseRunConfig({ strategy }), status: 'running', createdAt: '', round: 0, modelVersion: 0, rounds: [], versions: [] };
  }
  const rr = (round: number) => ({ round, baseVersion: round - 1, version: round, status: 'completed' as const, startedAt: '', endedAt: '', seconds: 0, participants: [], bytesReceived: 0, bytesSent: 0 });

  /** Rounds 1..k through a RunContext as the engine drives it: step, stage, release, record, save. */
  async function drive(ctx: RunContext, s: Strategy, w: Float32Array, rounds: ReturnType<typeof roundOf>[], from: number): Promise<Float32Array> {
    for (const [i, round] of rounds.entries()) {
      const out = s.aggregate(w, round.view, round.results, []);
      if (!out.ok) throw new Error(out.reason);
      w = out.weights;
      ctx.stageStrategyState(from + i);
      await ctx.persistStrategyState();
      ctx.recordRound(rr(from + i), from + i);
      await ctx.persist();
    }
    return w;
  }

  it.each(['fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'])('%s: resumed after 3 of 6 rounds ends bit-identical to an uninterrupted run', async (name) => {
    const rng = createRng(9);
    const w0 = Float32Array.from({ length: N }, () => gauss(rng));
    const rounds = Array.from({ length: 6 }, () => roundOf(rng, 3));

    const plain = createStrategy(run({ name }).config, deps);
    let ref = w0;
    for (const round of rounds) {
      const out = plain.aggregate(ref, round.view, round.results, []);
      if (out.ok) ref = out.weights;
    }

    const store = new MemoryStore();
    const rec = run({ name });
    await store.createRun(rec);
    const ctx = new RunContext(rec, store);
    const first = createStrategy(rec.config, deps);
    await ctx.attachStrategy(first);
    const mid = await drive(ctx, first, w0, rounds.slice(0, 3), 1);

    const saved = (await store.getRun(rec.id))!;
    expect(saved.serverOptState).toMatchObject({ name, step: 3, numParams: N });
    // Model-sized state stays out of the JSON record (base64 of m alone would be 4 * N * 4/3 characters).
    expect(Object.keys(saved.serverOptState!).sort()).toEqual(['name', 'numParams', 'options', 'sha256', 'step']);
    // Each round's participant summary (round-summary.ts, a fixed few dozen bytes, no strategy state) is left out of the
    // measure: with this small N, three of them alone would cross the bound the test is about.
    expect(JSON.stringify({ ...saved, rounds: saved.rounds.map(({ summary: _s, ...r }) => r) }).length).toBeLessThan((4 * N * 4) / 3);
    const blob = await store.getModel(saved.serverOptState!.sha256);
    expect(blob?.weights.length).toBe(name === 'fedavgm' ? N : 2 * N);

    const ctx2 = new RunContext(saved, store);
    const second = createStrategy(saved.config, deps);
    await ctx2.attachStrategy(second);
    expect((second as ServerOptStrategy).step).toBe(3);
    const end = await drive(ctx2, second, mid, rounds.slice(3), 4);
    expect(Buffer.from(end.buffer).equals(Buffer.from(ref.buffer))).toBe(true);
  });

  it('a save between a version being made and its record keeps the previous version\'s state; the blob is stored before the release', async () => {
    const store = new MemoryStore();
    const rec = run({ name: 'fedadam' });
    await store.createRun(rec);
    const ctx = new RunContext(rec, store);
    const s = createStrategy(rec.config, deps);
    await ctx.attachStrategy(s);
    const rng = createRng(2);
    const w = await drive(ctx, s, new Float32Array(N), [roundOf(rng, 2)], 1);
    const v1 = (await store.getRun(rec.id))!.serverOptState!;
    const round = roundOf(rng, 2);
    s.aggregate(w, round.view, round.results, []);
    ctx.stageStrategyState(2);
    let puts = 0;
    const put = store.putModel.bind(store);
    store.putModel = async (sha, b) => (puts++, put(sha, b));
    await ctx.persistStrategyState();
    expect(puts).toBe(1); // step 2's moments are durable before version 2 is released
    await ctx.persist(); // e.g. a live save before the round's record: still version 1's state
    expect((await store.getRun(rec.id))!.serverOptState).toEqual(v1);
    ctx.recordRound(rr(2), 2);
    await ctx.persist();
    await ctx.persist();
    expect((await store.getRun(rec.id))!.serverOptState).toMatchObject({ step: 2 });
    expect(puts).toBe(1); // not written again on later saves
  });

  it('refuses a state saved with other options or another strategy, and a missing blob', async () => {
    const store = new MemoryStore();
    const rec = run({ name: 'fedadam' });
    await store.createRun(rec);
    const ctx = new RunContext(rec, store);
    const s = createStrategy(rec.config, deps);
    await ctx.attachStrategy(s);
    await drive(ctx, s, new Float32Array(N), [roundOf(createRng(4), 2)], 1);
    const saved = (await store.getRun(rec.id))!;
    const other = { ...saved, config: parseRunConfig({ strategy: { name: 'fedadam', beta1: 0.5 } }) };
    await expect(new RunContext(structuredClone(other), store).attachStrategy(createStrategy(other.config, deps))).rejects.toThrow(/beta1=0.9 differs from the configured beta1=0.5/);
    const yogi = { ...saved, config: parseRunConfig({ strategy: { name: 'fedyogi' } }) };
    await expect(new RunContext(structuredClone(yogi), store).attachStrategy(createStrategy(yogi.config, deps))).rejects.toThrow(/fedadam's/);
    const lost = structuredClone(saved);
    await expect(new RunContext(lost, new MemoryStore()).attachStrategy(createStrategy(lost.config, deps))).rejects.toThrow(/missing from the store/);
  });

  it('blocks a resume whose record lost the moments after version 1 (fresh moments would change the run)', async () => {
    const s = createStrategy(run({ name: 'fedyogi' }).config, deps);
    expect(s.resumeBlocker?.({}, { modelVersion: 0, roundsDone: 0 })).toBeUndefined();
    expect(s.resumeBlocker?.({}, { modelVersion: 3, roundsDone: 3 })).toMatch(/fedyogi run has no saved server optimizer state for version 3/);
    const store = new MemoryStore();
    const rec = run({ name: 'fedyogi' });
    await store.createRun(rec);
    const ctx = new RunContext(rec, store);
    await ctx.attachStrategy(s);
    await drive(ctx, s, new Float32Array(N), [roundOf(createRng(5), 2)], 1);
    const saved = (await store.getRun(rec.id))!;
    expect(s.resumeBlocker?.(new RunContext(saved, store).strategyState(), { modelVersion: 1, roundsDone: 1 })).toBeUndefined();
  });
});
