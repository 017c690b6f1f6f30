import { describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS, judgeCanary, parseDuration, psi, thresholdsOf, type AgentEvidence, type VersionFigures } from './canary.js';

const t = { ...DEFAULT_THRESHOLDS, minRequests: 20 };
const fig = (requests: number, errors: number, p99Ms: number, classes: number[], extra: Partial<VersionFigures> = {}): VersionFigures => ({ requests, errors, p99Ms, classes, ...extra });
const healthy = (agent: string): AgentEvidence => ({ agent, stable: fig(800, 0, 4, [80, 80, 80, 80, 80, 80, 80, 80, 80, 80]), candidate: fig(200, 0, 5, [20, 22, 18, 20, 20, 20, 20, 20, 22, 18]) });

describe('judgeCanary', () => {
  it('is healthy when every figure is within its limit', () => {
    const v = judgeCanary([healthy('a'), healthy('b')], t);
    expect(v.state).toBe('healthy');
    expect(v.figures).toMatchObject({ agents: 2, candidateRequests: 400, stableRequests: 1600, errorRate: 0, latencyRatio: 1.25 });
    expect(v.figures.drift!).toBeLessThan(0.01);
  });

  it('fails on the error rate (NaN outputs count as errors), naming the figure and the limit', () => {
    const v = judgeCanary([{ ...healthy('a'), candidate: fig(30, 30, 5, []) }], t);
    expect(v).toMatchObject({ state: 'failing' });
    expect(v.state === 'failing' && v.reason).toMatch(/^error rate 100\.0% > max 5\.0% \(30 of 30 candidate requests/);
  });

  it('waits for minRequests before judging a rate: one early error is not 100%', () => {
    expect(judgeCanary([{ ...healthy('a'), candidate: fig(1, 1, 5, []) }], t).state).toBe('insufficient');
    expect(judgeCanary([], t).state).toBe('insufficient');
  });

  it('fails on prediction drift: a candidate that predicts one class for everything', () => {
    const v = judgeCanary([{ ...healthy('a'), candidate: fig(100, 0, 5, [100]) }], t);
    expect(v.state).toBe('failing');
    expect(v.state === 'failing' && v.reason).toMatch(/^prediction drift \d+\.\d+ > max 0\.25 \(PSI of predicted classes/);
  });

  it('fails on the p99 ratio (median over agents, so one slow device alone does not)', () => {
    const slow = (agent: string, p99: number): AgentEvidence => ({ ...healthy(agent), candidate: fig(200, 0, p99, [20, 22, 18, 20, 20, 20, 20, 20, 22, 18]) });
    expect(judgeCanary([slow('a', 40), slow('b', 5), slow('c', 5)], t).state).toBe('healthy');
    const v = judgeCanary([slow('a', 40), slow('b', 40)], t);
    expect(v.state === 'failing' && v.reason).toMatch(/^p99 latency 10\.00x the stable version's > max 3x/);
    // Under LATENCY_MIN_REQUESTS on an agent its p99 is one slow request: not judged.
    expect(judgeCanary([{ ...healthy('a'), candidate: fig(150, 0, 40, [15, 15, 15, 15, 15, 15, 15, 15, 15, 15]) }], t).figures.latencyRatio).toBeUndefined();
  });

  it('judges accuracy at once, from holdouts or else the run\'s evaluations', () => {
    const acc = (c: number, s: number): AgentEvidence => ({ agent: 'a', stable: fig(0, 0, 0, [], { accuracy: s }), candidate: fig(0, 0, 0, [], { accuracy: c }) });
    const th = { ...t, minAccuracyDelta: -0.02 };
    expect(judgeCanary([acc(0.9, 0.91)], th).state).toBe('insufficient');
    const v = judgeCanary([acc(0.5, 0.91)], th);
    expect(v.state === 'failing' && v.reason).toMatch(/^accuracy delta -41\.00 points < min -2\.00 \(holdouts of 1 agent/);
    const r = judgeCanary([], th, -0.1);
    expect(r.state === 'failing' && r.reason).toMatch(/the run's evaluations/);
  });

  it('regression outputs: drift is the mean shift in stable standard deviations', () => {
    const e: AgentEvidence = { agent: 'a', stable: { requests: 100, errors: 0, scalar: { n: 100, mean: 10, std: 2 } }, candidate: { requests: 100, errors: 0, scalar: { n: 100, mean: 11, std: 2 } } };
    expect(judgeCanary([e], t).figures.drift).toBeCloseTo(0.5, 9);
  });
});

describe('psi', () => {
  it('matches a hand-computed value and is 0 for equal distributions', () => {
    expect(psi([50, 50], [50, 50])).toBeCloseTo(0, 12);
    // Expected (50.5/101, 50.5/101) = (0.5, 0.5); actual (80.5/101, 20.5/101).
    const a = 80.5 / 101, b = 20.5 / 101;
    expect(psi([50, 50], [80, 20])).toBeCloseTo((a - 0.5) * Math.log(a / 0.5) + (b - 0.5) * Math.log(b / 0.5), 12);
  });
});

describe('parseDuration and thresholds', () => {
  it('reads s/m/h/ms and refuses garbage naming the setting', () => {
    expect(parseDuration('10m', '--window')).toBe(600_000);
    expect(parseDuration('90s', '--window')).toBe(90_000);
    expect(parseDuration('2', '--window')).toBe(2000);
    expect(parseDuration('1h', '--window')).toBe(3_600_000);
    expect(() => parseDuration('ten minutes', '--window')).toThrow(/--window: "ten minutes" is not a duration/);
    expect(() => parseDuration('10ms', 'promotion.window')).toThrow(/promotion.window: 10ms must be between 1s and 7 days/);
  });

  it('fills unset thresholds with the defaults', () => {
    expect(thresholdsOf({ windowMs: 1000, maxErrorRate: 0.5 })).toEqual({ ...DEFAULT_THRESHOLDS, maxErrorRate: 0.5 });
  });
});

describe('psiExcess', () => {
  it('is about 0 for two samples of one distribution, and large for a collapsed one', async () => {
    const { psiExcess } = await import('./canary.js');
    // 120 vs 104 draws of a uniform 10-class distribution: raw PSI is noise of ~0.16, the excess ~0.
    let seed = 1;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const draw = (n: number) => { const c = new Array(10).fill(0); for (let i = 0; i < n; i++) c[Math.floor(rnd() * 10)]++; return c; };
    let worst = 0;
    for (let t = 0; t < 50; t++) worst = Math.max(worst, psiExcess(draw(120), draw(104)));
    expect(worst).toBeLessThan(0.25);
    expect(psiExcess(draw(120), [104])).toBeGreaterThan(1);
  });
});
