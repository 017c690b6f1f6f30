/**
 * SCAFFOLD through the Strategy interface (createStrategy from a run config) against a float64 reference of the
 * paper's rounds (Karimireddy et al. 2020, Algorithm 1, option II) with simulated agents that keep their own variates;
 * the server variate through a MemoryStore round trip (RunContext: blob in the model store, sha256 in the record).
 */
import { blobDigest, createRng } from '@fedge/proto';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { RunContext } from '../engine/run-context.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { createStrategy } from './index.js';
import { SCAFFOLD_VARIATE_FORMAT, ScaffoldStrategy } from './scaffold.js';
import type { AggregateView, Strategy } from './strategy.js';

const N = 193; // params
const AGENTS = 5;
const ROUNDS = 6;

function gauss(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

interface Round {
  /** The engine's view: the unweighted float32 mean of the stacked [Δy_i | Δc_i] (weightOf is 1). */
  view: AggregateView;
  results: { agentId: string; numExamples: number; weight: number; metrics: Record<string, number> }[];
  /** Each sampled agent's Δy_i and Δc_i, float64. */
  dy: Float64Array[];
  dc: Float64Array[];
}

/**
 * One round of agents: a random subset S trains K local steps from x at rate lr on random gradients; each computes
 * Δy_i and option II's Δc_i = (x − y_i)/(K·lr) − c from the x and c the server sent (float32, as on the wire).
 */
function roundOf(rng: () => number, x: Float32Array, c: Float32Array, ci: Float64Array[], lr: number, K: number): Round {
  const S = [...Array(AGENTS).keys()].filter(() => rng() < 0.7);
  if (S.length === 0) S.push(0);
  const dy: Float64Array[] = [], dc: Float64Array[] = [];
  const sum = new Float64Array(2 * N);
  for (const a of S) {
    const y = Float64Array.from(x);
    for (let k = 0; k < K; k++) for (let i = 0; i < N; i++) y[i] = y[i]! - lr * (0.5 * gauss(rng) + 0.2 * a - ci[a]![i]! + c[i]!);
    const d = Float64Array.from(y, (v, i) => v - x[i]!);
    const v = Float64Array.from(y, (yi, i) => (x[i]! - yi) / (K * lr) - c[i]!);
    for (let i = 0; i < N; i++) ci[a]![i] = ci[a]![i]! + v[i]!;
    dy.push(d);
    dc.push(v);
    // On the wire each agent sends float32; the aggregate is their float32 mean.
    const wire = new Float32Array(2 * N);
    wire.set(d);
    wire.set(v, N);
    for (let i = 0; i < 2 * N; i++) sum[i] = sum[i]! + wire[i]!;
  }
  const mean32 = Float32Array.from(sum, (s) => s / S.length);
  return {
    view: { count: S.length, totalWeight: S.length, mean: () => mean32.slice() },
    results: S.map((a) => ({ agentId: `a${a}`, numExamples: 10 + a, weight: 1, metrics: {} })),
    dy,
    dc,
  };
}

/** Float64 server of Algorithm 1 lines 16-17: x ← x + η_g·(1/|S|)ΣΔy_i, c ← c + (1/N)ΣΔc_i. */
function serverRef(x: Float64Array, c: Float64Array, r: Round, lrG: number): void {
  const s = r.dy.length;
  for (let i = 0; i < N; i++) {
    let sy = 0, sc = 0;
    for (let k = 0; k < s; k++) {
      sy += r.dy[k]![i]!;
      sc += r.dc[k]![i]!;
    }
    x[i] = x[i]! + (lrG * sy) / s;
    c[i] = c[i]! + sc / AGENTS;
  }
}

function worstRel(actual: Float32Array, expected: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (1e-3 + Math.abs(expected[i]!)));
  return worst;
}

const deps = { populationSize: () => AGENTS };
const variateOf = (s: Strategy): Float32Array => s.controlVariates!.current().blob.weights;

describe('scaffold vs a float64 reference of the paper', () => {
  it.each([{ lrG: 1 }, { lrG: 0.5 }])('server lr $lrG: x and c over rounds with partial participation', ({ lrG }) => {
    const s = createStrategy(parseRunConfig({ strategy: { name: 'scaffold', serverLearningRate: lrG } }), deps);
    expect(s).toBeInstanceOf(ScaffoldStrategy);
    expect(s.weightOf(123)).toBe(1);
    s.controlVariates!.init(N);
    const rng = createRng(17);
    let x = Float32Array.from({ length: N }, () => gauss(rng));
    const xr = Float64Array.from(x), cr = new Float64Array(N);
    const ci = Array.from({ length: AGENTS }, () => new Float64Array(N));
    const shas = new Set<string>();
    for (let t = 0; t < ROUNDS; t++) {
      const sent = s.taskConfig!().controlVariateSha256!;
      shas.add(sent);
      const c = variateOf(s);
      expect(s.controlVariates!.find(sent)?.weights).toEqual(c);
      const r = roundOf(rng, x, c, ci, 0.05, 3);
      const out = s.aggregate(x, r.view, r.results, []);
      if (!out.ok) throw new Error(out.reason);
      serverRef(xr, cr, r, lrG);
      expect(worstRel(out.weights, xr)).toBeLessThan(1e-4);
      expect(worstRel(variateOf(s), cr)).toBeLessThan(1e-4);
      x = out.weights;
    }
    expect(shas.size).toBe(ROUNDS);
    // c stays the mean of the agents' variates (the invariant the correction rests on).
    const meanCi = Float64Array.from({ length: N }, (_, i) => ci.reduce((a, v) => a + v[i]!, 0) / AGENTS);
    expect(worstRel(variateOf(s), meanCi)).toBeLessThan(1e-3);
    // The variate blob is content-addressed and cannot pass for a model.
    const cur = s.controlVariates!.current();
    expect(blobDigest(cur.blob)).toBe(cur.sha256);
    expect((cur.blob.topology as { format: string }).format).toBe(SCAFFOLD_VARIATE_FORMAT);
  });

  it('refuses a NaN mean before touching x or c, a wrong-sized aggregate, and async', () => {
    const s = createStrategy(parseRunConfig({ strategy: { name: 'scaffold' } }), deps);
    s.controlVariates!.init(4);
    const before = s.taskConfig!().controlVariateSha256;
    const bad = Float32Array.from([0, 0, 0, 0, 0, NaN, 0, 0]);
    const r = [{ agentId: 'a', numExamples: 1, weight: 1, metrics: {} }, { agentId: 'b', numExamples: 1, weight: 1, metrics: {} }];
    expect(() => s.aggregate(new Float32Array(4), { count: 2, totalWeight: 2, mean: () => bad }, r, [])).toThrow(/not finite at parameter 1/);
    expect(s.taskConfig!().controlVariateSha256).toBe(before);
    expect(() => s.aggregate(new Float32Array(4), { count: 2, totalWeight: 2, mean: () => new Float32Array(4) }, r, [])).toThrow(/expected 2 x 4/);
    expect(s.aggregateBuffered(new Float32Array(4), { count: 1, totalWeight: 1, mean: () => new Float32Array(8) }, r, [])).toMatchObject({ ok: false });
  });
});

describe('scaffold state: the server variate is a blob in the model store, restored on resume', () => {
  const rec = (): RunRecord => ({ id: 'run-scaffold', config: parseRunConfig({ strategy: { name: 'scaffold' } }), status: 'running', createdAt: '', round: 0, modelVersion: 0, rounds: [], versions: [] });
  const rr = (round: number) => ({ round, baseVersion: round - 1, version: round, status: 'completed' as const, startedAt: '', endedAt: '', seconds: 0, participants: [], bytesReceived: 0, bytesSent: 0 });

  it('resumed after 3 of 6 rounds: same x and c bit for bit as an uninterrupted run', async () => {
    const rng = createRng(3);
    const x0 = Float32Array.from({ length: N }, () => gauss(rng));
    // Fixed rounds (their updates do not depend on the server state here), replayed in both runs.
    const rounds = Array.from({ length: 6 }, () => roundOf(rng, x0, new Float32Array(N), Array.from({ length: AGENTS }, () => new Float64Array(N)), 0.05, 2));
    const plain = createStrategy(rec().config, deps);
    plain.controlVariates!.init(N);
    let ref = x0;
    for (const r of rounds) ref = (plain.aggregate(ref, r.view, r.results, []) as { weights: Float32Array }).weights;

    const drive = async (ctx: RunContext, s: Strategy, x: Float32Array, rs: Round[], from: number): Promise<Float32Array> => {
      for (const [i, r] of rs.entries()) {
        const out = s.aggregate(x, r.view, r.results, []);
        if (!out.ok) throw new Error(out.reason);
        x = out.weights;
        ctx.stageStrategyState(from + i);
        await ctx.persistStrategyState();
        ctx.recordRound(rr(from + i), from + i);
        await ctx.persist();
      }
      return x;
    };
    const store = new MemoryStore();
    const r0 = rec();
    await store.createRun(r0);
    const first = createStrategy(r0.config, deps);
    first.controlVariates!.init(N);
    const ctx = new RunContext(r0, store);
    await ctx.attachStrategy(first);
    const mid = await drive(ctx, first, x0, rounds.slice(0, 3), 1);
    const saved = (await store.getRun(r0.id))!;
    expect(saved.scaffoldState).toMatchObject({ step: 3, numParams: N });
    expect((await store.getModel(saved.scaffoldState!.sha256))?.weights).toEqual(variateOf(first));

    const second = createStrategy(saved.config, deps);
    const ctx2 = new RunContext(saved, store);
    await ctx2.attachStrategy(second);
    second.controlVariates!.init(N); // the engine sizes it after attaching: a restored variate is kept
    expect(second.taskConfig!().controlVariateSha256).toBe(saved.scaffoldState!.sha256);
    const end = await drive(ctx2, second, mid, rounds.slice(3), 4);
    expect(Buffer.from(end.buffer).equals(Buffer.from(ref.buffer))).toBe(true);
    expect(Buffer.from(variateOf(second).buffer).equals(Buffer.from(variateOf(plain).buffer))).toBe(true);
    // A resume that lost the variate after version 1 is refused rather than restarting c from zero.
    expect((second as ScaffoldStrategy).resumeBlocker({}, { modelVersion: 2 })).toMatch(/no saved server control variate for version 2/);
    const lost = structuredClone(saved);
    await expect(new RunContext(lost, new MemoryStore()).attachStrategy(createStrategy(lost.config, deps))).rejects.toThrow();
  });
});

describe('scaffold in the run config', () => {
  it.each([
    [{ strategy: { name: 'scaffold' }, mode: 'async' }, /strategy.name scaffold cannot run with mode async/],
    [{ strategy: { name: 'scaffold' }, privacy: { mode: 'central', clipNorm: 1, noiseMultiplier: 1 } }, /scaffold cannot run with privacy mode central/],
    [{ strategy: { name: 'scaffold' }, privacy: { mode: 'local', clipNorm: 1, noiseMultiplier: 1 } }, /scaffold cannot run with privacy mode local/],
    [{ strategy: { name: 'scaffold' }, compression: { codec: 'int8' } }, /scaffold cannot run with compression.codec int8/],
    [{ strategy: { name: 'scaffold', normBound: 5 } }, /strategy.normBound: applies to .*, not scaffold/],
    [{ strategy: { name: 'scaffold' }, sync: { lateResults: 'next-round' } }, /scaffold cannot run with sync.lateResults next-round/],
    [{ strategy: { name: 'scaffold' }, task: { type: 'classification', target: 'label', optimizer: { name: 'adam' } } }, /scaffold cannot run with task.optimizer.name adam/],
  ])('refuses %j naming both', (input, msg) => {
    expect(() => parseRunConfig(input)).toThrow(msg);
  });

  it('takes a server learning rate (default 1) and FedProx mu', () => {
    expect(parseRunConfig({ strategy: { name: 'scaffold' } }).strategy).toEqual({ name: 'scaffold', serverLearningRate: 1 });
    expect(parseRunConfig({ strategy: { name: 'scaffold', serverLearningRate: 0.5, proximalMu: 0.01 } }).strategy).toEqual({ name: 'scaffold', serverLearningRate: 0.5, proximalMu: 0.01 });
  });
});
