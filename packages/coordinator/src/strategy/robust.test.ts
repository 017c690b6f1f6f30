/** Robust strategies through the Strategy interface, over a spool-backed source, against rules/robust.ts in memory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRunConfig, type RunConfigInput } from '../config/run-config.js';
import { openSpoolSource } from '../engine/spool-source.js';
import { DiskSpool } from '../engine/update-spool.js';
import { createStrategy } from './index.js';
import { coordinateMedian, krum, multiKrum, trimmedMean, type UpdateSource } from './rules/robust.js';
import { RobustStrategy } from './robust.js';
import type { AcceptedResult } from './strategy.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** K random updates of n params; the last `bad` are sign-flipped and scaled (attackers). */
function updates(K: number, n: number, bad: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: K }, (_, k) => {
    const u = new Float32Array(n);
    for (let i = 0; i < n; i++) u[i] = 0.1 + (r() - 0.5) * 0.05;
    if (k >= K - bad) for (let i = 0; i < n; i++) u[i] = -10 * u[i]!;
    return u;
  });
}

const memory = (us: Float32Array[]): UpdateSource => ({ count: us.length, numParams: us[0]!.length, read: (k, o, l) => us[k]!.subarray(o, o + l) });

/** The updates written to a DiskSpool under agent names that sort in index order, read back as a chunked source. */
function spooled(us: Float32Array[]) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-robust-'));
  dirs.push(dir);
  const spool = new DiskSpool(dir, false);
  // Written in reverse: the source orders by agent name, not by arrival.
  const entries = us.map((u, k) => ({ name: `agent-${String(k).padStart(3, '0')}`, weight: 10 + k, u })).reverse().map((e) => ({ name: e.name, weight: e.weight, file: spool.write('run', 1, e.name, new Uint8Array(e.u.buffer)) }));
  return openSpoolSource(entries, us[0]!.length);
}

const results = (K: number): AcceptedResult[] => Array.from({ length: K }, (_, k) => ({ agentId: `a${k}`, numExamples: 10 + k, weight: 10 + k, metrics: {} }));

function make(strategy: RunConfigInput['strategy'], chunk?: number) {
  const s = createStrategy(parseRunConfig({ strategy, agentsPerRound: { min: 3 } }), { populationSize: () => 10 });
  if (!chunk) return s;
  const c = parseRunConfig({ strategy, agentsPerRound: { min: 3 } }).strategy;
  return new RobustStrategy(c.name as 'median', { fraction: 1, minAgents: 3, minResults: 3, serverLearningRate: c.serverLearningRate }, { ...(c.beta !== undefined ? { beta: c.beta } : {}), ...(c.f !== undefined ? { f: c.f } : {}), ...(c.m !== undefined ? { m: c.m } : {}), chunk });
}

describe('robust strategies over a spooled round', () => {
  const K = 10, n = 1003, bad = 3;
  const us = updates(K, n, bad, 7);
  const base = new Float32Array(n).fill(1);
  const cases: [RunConfigInput['strategy'], (s: UpdateSource) => Float32Array][] = [
    [{ name: 'median' }, (s) => coordinateMedian(s).aggregate],
    [{ name: 'trimmed-mean' }, (s) => trimmedMean(s, 0.1).aggregate],
    [{ name: 'trimmed-mean', beta: 0.3 }, (s) => trimmedMean(s, 0.3).aggregate],
    [{ name: 'krum', f: 3 }, (s) => krum(s, 3).aggregate],
    [{ name: 'krum' }, (s) => krum(s, 1).aggregate],
    [{ name: 'multi-krum', f: 3 }, (s) => multiKrum(s, 3).aggregate],
    [{ name: 'multi-krum', f: 2, m: 4 }, (s) => multiKrum(s, 2, 4).aggregate],
  ];

  it.each(cases)('%j: base + the rule on the in-memory updates, bit for bit, whatever the chunk', (strategy, rule) => {
    const expected = rule(memory(us));
    const want = base.map((b, i) => b + expected[i]!);
    for (const chunk of [undefined, 100, 1]) {
      const source = spooled(us);
      try {
        const s = make(strategy, chunk);
        expect(s.aggregateUpdates).toBeTypeOf('function');
        const out = s.aggregateUpdates!(base, source, results(K), []);
        expect(out.ok).toBe(true);
        if (out.ok) expect(Array.from(out.weights)).toEqual(Array.from(want));
      } finally {
        source.close();
      }
    }
    // Three attackers sending -10x: each aggregate that tolerates 3 stays near the honest 0.1 (the mean: about -2.9;
    // trimmed-mean's default beta 0.1 trims one value per side of 10, so two attackers still pull it).
    if (!(strategy?.name === 'trimmed-mean' && strategy.beta === undefined) && !(strategy?.name === 'krum' && strategy.f === undefined)) expect(Math.abs(expected[0]! - 0.1)).toBeLessThan(0.05);
  });

  it('serverLearningRate scales the robust delta', () => {
    const source = spooled(us);
    const s = createStrategy(parseRunConfig({ strategy: { name: 'median', serverLearningRate: 0.5 }, agentsPerRound: { min: 3 } }), { populationSize: () => 10 });
    const out = s.aggregateUpdates!(base, source, results(K), []);
    source.close();
    const med = coordinateMedian(memory(us)).aggregate;
    expect(out.ok && Array.from(out.weights)).toEqual(Array.from(base.map((b, i) => b + 0.5 * med[i]!)));
  });

  it('a round too small for Krum\'s f, or below minResults, makes no model and says why', () => {
    const few = us.slice(0, 5);
    const source = spooled(few);
    const s = make({ name: 'krum', f: 2 });
    const out = s.aggregateUpdates!(base, source, results(5), []);
    source.close();
    expect(out).toEqual({ ok: false, reason: expect.stringMatching(/krum: f=2 needs more than 2f\+2 = 6 updates, got 5/) });
    const s2 = make({ name: 'median' });
    const src2 = spooled(us.slice(0, 2));
    expect(s2.aggregateUpdates!(base, src2, results(2), [{ agentId: 'x', outcome: 'dropped', reason: 'gone' }])).toEqual({ ok: false, reason: expect.stringMatching(/only 2 of the 3 required results arrived; failures: 1x dropped:gone/) });
    src2.close();
  });

  it('local DP around a robust strategy keeps the capability and accounts the round; fedavg has none', () => {
    const local = createStrategy(parseRunConfig({ strategy: { name: 'median' }, agentsPerRound: { min: 3 }, privacy: { mode: 'local', clipNorm: 1, noiseMultiplier: 1, delta: 1e-5 } }), { populationSize: () => 10 });
    const source = spooled(us);
    const out = local.aggregateUpdates!(base, source, results(K), []);
    source.close();
    expect(out.ok).toBe(true);
    expect(local.privacy!.spent().steps).toBe(1);
    expect(createStrategy(parseRunConfig({}), { populationSize: () => 10 }).aggregateUpdates).toBeUndefined();
    expect(createStrategy(parseRunConfig({ strategy: { name: 'norm-bound', normBound: 1 } }), { populationSize: () => 10 }).aggregateUpdates).toBeUndefined();
  });

  it('the spool source refuses a file of the wrong size', () => {
    const src = spooled(us);
    src.close();
    expect(() => openSpoolSource(src.entries, n + 1)).toThrow(/has 4012 bytes, expected 4016/);
  });
});
