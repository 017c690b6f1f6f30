import { describe, expect, it } from 'vitest';
import { GaussianSampler, seededUniform } from '@fedge/proto';
import { DpStrategy } from './dp.js';
import { FedAvg } from './fedavg.js';
import { planEpsilon } from '../privacy/accountant.js';
import { createRng } from '@fedge/proto';
import type { AcceptedResult, AggregateView, CandidateAgent } from './strategy.js';
import type { PrivacyConfig } from '../privacy/config.js';

const agents = (n: number): CandidateAgent[] => Array.from({ length: n }, (_, i) => ({ id: `a${i}`, name: `a${i}`, numExamples: 10 }));

/** An aggregate of `updates` folded with weight 1 each. */
function view(updates: Float32Array[], n: number): AggregateView {
  const sum = new Float32Array(n);
  for (const u of updates) for (let i = 0; i < n; i++) sum[i]! += u[i]!;
  return { count: updates.length, totalWeight: updates.length, mean: () => sum.map((x) => x / Math.max(1, updates.length)) };
}

/** DP around FedAvg (local mode selects through it: fraction q, at least 1 agent, 1 result). */
function make(p: Partial<PrivacyConfig>, q = 0.5, population = 8, seed = 1): DpStrategy {
  const privacy: PrivacyConfig = { mode: 'central', clipNorm: 1, noiseMultiplier: 1.1, delta: 1e-5, ...p };
  const inner = new FedAvg({ fraction: q, minAgents: 1, minResults: 1, serverLearningRate: 1 });
  return new DpStrategy(inner, { privacy, samplingRate: q, populationSize: () => population, noise: new GaussianSampler(seededUniform(seed)) });
}

describe('DpFedAvg (central)', () => {
  it('Poisson-samples each agent with probability q and fixes the denominator q * N at the first round', () => {
    const s = make({}, 0.3, 50);
    const rng = createRng(7);
    let picked = 0;
    const rounds = 2000;
    for (let r = 0; r < rounds; r++) picked += s.selectAgents(agents(50), rng).length;
    const rate = picked / (rounds * 50);
    expect(Math.abs(rate - 0.3)).toBeLessThan(4 * Math.sqrt((0.3 * 0.7) / (rounds * 50)));
    expect(s.denominator).toBeCloseTo(15, 12);
    expect(s.weightOf(1234)).toBe(1);
  });

  it('publishes base + (sum of clipped updates + N(0, (zS)^2)) / D: mean and std of the noise match (1%)', () => {
    const n = 400_000;
    const z = 1.3;
    const S = 0.5;
    const s = make({ noiseMultiplier: z, clipNorm: S }, 0.5, 8);
    s.selectAgents(agents(8), createRng(1)); // D = 4
    const u1 = new Float32Array(n).fill(0.001);
    const u2 = new Float32Array(n).fill(-0.0005);
    const base = new Float32Array(n).fill(1);
    const out = s.aggregate(base, view([u1, u2], n), [], []);
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    const want = 1 + (0.001 - 0.0005) / 4;
    let m = 0;
    let m2 = 0;
    for (const w of out.weights) {
      m += w - want;
      m2 += (w - want) ** 2;
    }
    m /= n;
    const std = Math.sqrt(m2 / n - m * m);
    expect(Math.abs(std / ((z * S) / 4) - 1)).toBeLessThan(0.01);
    expect(Math.abs(m)).toBeLessThan((5 * z * S) / 4 / Math.sqrt(n));
  });

  it('a round with no results still publishes (noise only) and still counts as a step', () => {
    const s = make({});
    s.selectAgents(agents(8), createRng(1));
    const out = s.aggregate(new Float32Array(10), view([], 10), [], [{ agentId: 'x', outcome: 'dropped', reason: 'gone' }]);
    expect(out.ok).toBe(true);
    expect(s.spent().steps).toBe(1);
  });

  it('epsilon after each aggregated round equals the planner for (q, z, rounds, delta)', () => {
    const s = make({ noiseMultiplier: 0.9 }, 0.25, 8);
    s.selectAgents(agents(8), createRng(1));
    expect(s.spent().epsilon).toBe(0);
    for (let r = 1; r <= 5; r++) {
      s.aggregate(new Float32Array(4), view([], 4), [], []);
      expect(s.spent().epsilon).toBeCloseTo(planEpsilon({ samplingRate: 0.25, noiseMultiplier: 0.9, steps: r, delta: 1e-5 }).epsilon, 12);
      expect(s.spent().steps).toBe(r);
    }
  });

  it('maxEpsilon: budgetStop says so before the round that would exceed it', () => {
    const e1 = planEpsilon({ samplingRate: 0.5, noiseMultiplier: 1.1, steps: 1, delta: 1e-5 }).epsilon;
    const e2 = planEpsilon({ samplingRate: 0.5, noiseMultiplier: 1.1, steps: 2, delta: 1e-5 }).epsilon;
    const s = make({ maxEpsilon: (e1 + e2) / 2 });
    expect(s.budgetStop(1)).toBeUndefined();
    s.aggregate(new Float32Array(2), view([], 2), [], []);
    expect(s.budgetStop(2)).toMatch(/privacy budget: stopped before round 2, which would take epsilon from [\d.]+ to [\d.]+ > maxEpsilon/);
    expect(make({}).budgetStop(1)).toBeUndefined();
  });

  it('tasks carry the clip norm, no local noise, and ask for the clipped bit only with adaptive clipping', () => {
    expect(make({ clipNorm: 2 }).trainConfig()).toEqual({ clipNorm: 2, noiseStd: 0, reportClipped: false });
    expect(make({ clipNorm: 2, adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2 } }).trainConfig().reportClipped).toBe(true);
  });

  it('adaptive clipping: z_delta = (z^-2 - (2 sb)^-2)^-1/2, and the norm moves toward the target quantile', () => {
    const s = make({ noiseMultiplier: 1, clipNorm: 1, adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 1 } }, 1, 100);
    expect(s.updateNoiseMultiplier).toBeCloseTo(1 / Math.sqrt(1 - 0.25), 12);
    s.selectAgents(agents(100), createRng(1)); // D = 100
    const res = (clipped: number): AcceptedResult[] => Array.from({ length: 100 }, (_, i) => ({ agentId: `a${i}`, numExamples: 1, weight: 1, metrics: { dp_clipped: clipped } }));
    s.aggregate(new Float32Array(2), view([], 2), res(0), []); // all unclipped: norm too large, shrink
    const shrunk = s.clipNorm;
    expect(shrunk).toBeLessThan(1);
    expect(shrunk).toBeCloseTo(Math.exp(-0.2 * 0.5), 1);
    s.aggregate(new Float32Array(2), view([], 2), res(1), []); // all clipped: grow
    expect(s.clipNorm).toBeGreaterThan(shrunk);
    expect(s.spent().clipNorm).toBe(shrunk); // the norm the last aggregated round used
  });
});

describe('DpFedAvg (local)', () => {
  it('agents add noise z S; epsilon per round is the Gaussian at q = 1 with multiplier z / 2', () => {
    const s = make({ mode: 'local', noiseMultiplier: 4, clipNorm: 0.5 }, 1, 4);
    expect(s.trainConfig()).toEqual({ clipNorm: 0.5, noiseStd: 2, reportClipped: false });
    expect(s.selectAgents(agents(4), createRng(1))).toHaveLength(4);
    const u = new Float32Array([0.1, 0.2]);
    for (let r = 1; r <= 3; r++) {
      const out = s.aggregate(new Float32Array(2), view([u], 2), [{ agentId: 'a0', numExamples: 1, weight: 1, metrics: {} }], []);
      expect(out.ok).toBe(true);
      expect(s.spent().epsilon).toBeCloseTo(planEpsilon({ samplingRate: 1, noiseMultiplier: 2, steps: r, delta: 1e-5 }).epsilon, 12);
    }
  });
});

describe('DpFedAvg snapshot/restore (coordinator restarts)', () => {
  it('a restored strategy reports the same epsilon and clip and continues accounting identically', () => {
    const adaptive = { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 5 };
    const a = make({ adaptiveClipping: adaptive, noiseMultiplier: 1.1 }, 0.25, 40);
    const n = 16;
    const base = new Float32Array(n);
    const rng = createRng(3);
    const step = (s: DpStrategy): void => {
      const chosen = s.selectAgents(agents(40), rng);
      const results = chosen.map((c, i) => ({ agentId: c.id, name: c.name, numExamples: 10, metrics: { dp_clipped: i % 3 === 0 ? 1 : 0 } }) as unknown as AcceptedResult);
      s.aggregate(base, view([new Float32Array(n).fill(0.01)], n), results, []);
    };
    for (let r = 0; r < 5; r++) step(a);
    const snap = a.snapshot().privacyState!;
    expect(snap.steps).toBe(5);
    expect(snap.denominator).toBeCloseTo(10, 12);
    expect(snap.clipNorm).not.toBe(1); // adapted
    const b = make({ adaptiveClipping: adaptive, noiseMultiplier: 1.1 }, 0.25, 999);
    b.restore({ privacyState: JSON.parse(JSON.stringify(snap)) as typeof snap });
    expect(b.denominator).toBe(a.denominator);
    expect(b.clipNorm).toBe(a.clipNorm);
    expect(b.trainConfig()).toEqual(a.trainConfig());
    const sa = a.spent();
    const sb = b.spent();
    expect(sb.steps).toBe(5);
    expect(sb.clipNorm).toBe(sa.clipNorm);
    expect(sb.epsilon).toBeCloseTo(sa.epsilon, 12);
    expect(sb.epsilon).toBeCloseTo(planEpsilon({ samplingRate: 0.25, noiseMultiplier: 1.1, steps: 5, delta: 1e-5 }).epsilon, 12);
    // Both continue identically: same steps, same epsilon, same budget decisions.
    for (let r = 0; r < 3; r++) {
      a.aggregate(base, view([], n), [], []);
      b.aggregate(base, view([], n), [], []);
    }
    expect(b.spent().steps).toBe(8);
    expect(b.spent().epsilon).toBeCloseTo(a.spent().epsilon, 12);
    expect(b.spent().epsilon).toBeCloseTo(planEpsilon({ samplingRate: 0.25, noiseMultiplier: 1.1, steps: 8, delta: 1e-5 }).epsilon, 12);
    expect(b.budgetStop(9)).toBe(a.budgetStop(9));
    expect(() => b.restore({ privacyState: snap })).toThrow(/already composed/);
  });

  it('a snapshot before the first round restores nothing but the configured clip', () => {
    const s = make({}, 0.5, 8);
    const snap = s.snapshot().privacyState;
    expect(snap).toEqual({ steps: 0, clipNorm: 1 });
    const t = make({}, 0.5, 8);
    t.restore({ privacyState: snap });
    expect(t.spent().steps).toBe(0);
    expect(t.denominator).toBeUndefined();
  });
});

describe('DpFedAvg: the statistics step is one more accounted step', () => {
  it('composes a q = 1 Gaussian step at the run\'s noise multiplier, and keeps it apart from round steps in snapshots', () => {
    const s = make({ noiseMultiplier: 1.1 }, 0.5);
    s.privacy.accountStatistics();
    const stats = planEpsilon({ samplingRate: 1, noiseMultiplier: 1.1, steps: 1, delta: 1e-5 }).epsilon;
    expect(s.spent().epsilon).toBeCloseTo(stats, 6);
    expect(s.spent().steps).toBe(1);
    expect(s.snapshot().privacyState).toMatchObject({ steps: 0, statisticsSteps: 1 });
    const fresh = make({ noiseMultiplier: 1.1 }, 0.5);
    fresh.restore(s.snapshot());
    expect(fresh.spent().epsilon).toBeCloseTo(stats, 6);
  });

  it('blocks a resume that lost the accountant once rounds were aggregated (epsilon would be under-reported)', () => {
    const s = make({ noiseMultiplier: 1.1 }, 0.5);
    expect(s.resumeBlocker({}, { modelVersion: 0, roundsDone: 0 })).toBeUndefined();
    expect(s.resumeBlocker({}, { modelVersion: 2, roundsDone: 2 })).toMatch(/no persisted privacy accountant state/);
    expect(s.resumeBlocker({ privacyState: { steps: 2, clipNorm: 1 } }, { modelVersion: 2, roundsDone: 2 })).toBeUndefined();
  });
});
