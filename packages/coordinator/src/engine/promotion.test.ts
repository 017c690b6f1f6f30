import { describe, expect, it } from 'vitest';
import type { RunRecord } from '../store/store.js';
import { checkGate, planPromotion, planRollback, selectCanary } from './promotion.js';

const run = (acc: Record<number, number | undefined>, central: Record<number, number> = {}): RunRecord =>
  ({
    id: 'run-x',
    config: { seed: 7 } as RunRecord['config'],
    status: 'completed',
    createdAt: '',
    round: 3,
    modelVersion: 3,
    rounds: [],
    versions: [0, 1, 2, 3].map((v) => ({
      version: v,
      sha256: `sha${v}`,
      round: v,
      createdAt: '',
      ...(acc[v] !== undefined ? { federatedAccuracy: acc[v] } : {}),
      ...(central[v] !== undefined ? { centralAccuracy: central[v] } : {}),
    })),
  }) as RunRecord;

const agents = ['a', 'b', 'c', 'd'].map((n) => ({ id: `id-${n}`, name: n }));

describe('evaluation gate', () => {
  it('passes without a current promotion, at equal accuracy, and above current + margin', () => {
    const r = run({ 1: 0.8, 2: 0.85, 3: 0.7 });
    expect(() => checkGate(r, 2, undefined)).not.toThrow();
    expect(() => checkGate(r, 2, 1, 0.05)).not.toThrow();
    expect(() => checkGate(r, 2, 2)).not.toThrow();
  });
  it('refuses a worse candidate, naming both figures', () => {
    const r = run({ 1: 0.8, 3: 0.7 });
    expect(() => checkGate(r, 3, 1)).toThrow(/version 3 has accuracy 70\.00%, below version 1's 80\.00% \+ margin 0\.00%.*--force/);
    expect(() => checkGate(run({ 1: 0.8, 2: 0.82 }), 2, 1, 0.05)).toThrow(/82\.00%.*80\.00% \+ margin 5\.00%/);
  });
  it('falls back to central accuracy and refuses an unevaluated candidate', () => {
    expect(() => checkGate(run({}, { 1: 0.9, 2: 0.8 }), 2, 1)).toThrow(/accuracy 80\.00%/);
    expect(() => checkGate(run({ 1: 0.8 }), 2, 1)).toThrow(/accuracy unknown/);
  });
});

describe('canary selection', () => {
  it('is seeded, stable and takes ceil(F * n), at least one', () => {
    const a = selectCanary(agents, 0.5, 42);
    expect(a).toHaveLength(2);
    expect(selectCanary([...agents].reverse(), 0.5, 42)).toEqual(a);
    expect(selectCanary(agents, 0.01, 42)).toHaveLength(1);
    expect(selectCanary(agents, 0.3, 1)).toHaveLength(2);
    expect(() => selectCanary(agents, 1, 1)).toThrow(/fraction in \(0, 1\)/);
  });
});

describe('promotion plans', () => {
  it('canary, completion, promotion of a newer version, rollback', () => {
    const r = run({ 1: 0.8, 2: 0.85, 3: 0.9 });
    let p = planPromotion(r, agents, { version: 1 });
    expect(p.announceTo).toBeUndefined();
    r.promotion = p.state;
    p = planPromotion(r, agents, { version: 2, canary: 0.25 });
    expect(p.announceTo).toHaveLength(1);
    expect(p.state).toMatchObject({ version: 1, canary: { version: 2, fraction: 0.25 } });
    r.promotion = p.state;
    // rollback withdraws the canary: its agents get version 1 back
    const rb = planRollback(r);
    expect(rb).toMatchObject({ version: 1, announceTo: p.announceTo, state: { version: 1 } });
    expect(rb.state.canary).toBeUndefined();
    // completing the canary: promote the same version without --canary
    p = planPromotion(r, agents, { version: 2 });
    expect(p.state).toMatchObject({ version: 2, previous: 1 });
    expect(p.state.canary).toBeUndefined();
    r.promotion = p.state;
    r.promotion = planPromotion(r, agents, { version: 3 }).state;
    const back = planRollback(r);
    expect(back).toMatchObject({ version: 2, state: { version: 2, previous: 1 } });
    expect(back.announceTo).toBeUndefined();
    r.promotion = back.state;
    expect(planRollback(r).version).toBe(1);
    expect(r.promotion.history.map((h) => h.action)).toEqual(['promote', 'canary', 'promote', 'promote', 'rollback']);
  });
  it('gates promotions unless forced, and validates input', () => {
    const r = run({ 1: 0.9, 2: 0.8 });
    r.promotion = planPromotion(r, agents, { version: 1 }).state;
    expect(() => planPromotion(r, agents, { version: 2 })).toThrow(/evaluation gate/);
    expect(() => planPromotion(r, agents, { version: 2, canary: 0.5 })).toThrow(/evaluation gate/);
    expect(planPromotion(r, agents, { version: 2, force: true }).state).toMatchObject({ version: 2, previous: 1 });
    expect(planPromotion(r, agents, { version: 2, force: true }).state.history.at(-1)).toMatchObject({ forced: true });
    expect(() => planPromotion(r, agents, { version: 9 })).toThrow(/no version 9/);
    expect(() => planPromotion(r, agents, { version: 0 })).toThrow(/initial model/);
    expect(() => planRollback(run({}))).toThrow(/no promoted version/);
    expect(() => planRollback(r)).toThrow(/first promotion/);
  });
});
