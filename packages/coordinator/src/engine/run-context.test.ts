/** RunContext: transitions change the record, persist() saves it with the strategy's state, a release saves changed state first. */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { MemoryStore } from '../store/memory-store.js';
import type { RunRecord } from '../store/store.js';
import { createStrategy } from '../strategy/index.js';
import type { DpStrategy } from '../strategy/dp.js';
import { RunContext } from './run-context.js';

const privacy = { mode: 'central' as const, clipNorm: 1, noiseMultiplier: 1.1, delta: 1e-5 };

function record(input: Record<string, unknown> = {}): RunRecord {
  return { id: 'run-ctx', config: parseRunConfig(input), status: 'pending', createdAt: new Date().toISOString(), round: 0, modelVersion: 0, rounds: [], versions: [] };
}

describe('RunContext', () => {
  it('persist() saves the record with the strategy snapshot; a release saves only when the state changed', async () => {
    const store = new MemoryStore();
    const run = record({ privacy });
    await store.createRun(run);
    const ctx = new RunContext(run, store);
    const dp = createStrategy(run.config, { populationSize: () => 4 }) as DpStrategy;
    ctx.attachStrategy(dp);
    let saves = 0;
    const save = store.saveRun.bind(store);
    store.saveRun = async (r) => (saves++, save(r));
    await ctx.persistStrategyState();
    expect(saves).toBe(0); // nothing accounted since attach
    dp.aggregate(new Float32Array(2), { count: 0, totalWeight: 0, mean: () => new Float32Array(2) }, [], []);
    await ctx.persistStrategyState();
    expect(saves).toBe(1);
    expect((await store.getRun(run.id))?.privacyState?.steps).toBe(1);
    await ctx.persistStrategyState();
    expect(saves).toBe(1);
  });

  it('a resumed run restores the saved strategy state into a fresh strategy', () => {
    const run = { ...record({ privacy }), privacyState: { steps: 3, clipNorm: 0.7, denominator: 2 } };
    const ctx = new RunContext(run, new MemoryStore());
    const dp = createStrategy(run.config, { populationSize: () => 4 }) as DpStrategy;
    ctx.attachStrategy(dp);
    expect(dp.spent().steps).toBe(3);
    expect(dp.clipNorm).toBe(0.7);
    expect(dp.denominator).toBe(2);
  });

  it('transitions: rounds sorted, late outcomes noted, shutdown leaves the run resumable, a restart trims unsaved versions', async () => {
    const run = record();
    const ctx = new RunContext(run, new MemoryStore());
    const rr = (round: number) => ({ round, baseVersion: round - 1, version: round, status: 'completed' as const, startedAt: '', endedAt: '', seconds: 0, participants: [{ agentId: 'a', name: 'a', outcome: 'late' as const, reason: 'round deadline passed' }], bytesReceived: 0, bytesSent: 0 });
    ctx.recordRound(rr(2), 2);
    ctx.recordRound(rr(1), 2);
    expect(run.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(run.round).toBe(2);
    ctx.noteLateOutcome(1, 'a', 'discarded');
    // The record keeps each round's summary; the list (with the note) is the context's until saved, then the store's.
    expect(run.rounds[0]!.participants).toBeUndefined();
    expect(run.rounds[0]!.summary).toMatchObject({ participants: 1, outcomes: { late: 1 }, reasons: [{ outcome: 'late', reason: 'round deadline passed', count: 1 }] });
    expect((await ctx.listParticipants({ round: 1, limit: 10, offset: 0 })).participants[0]!.reason).toBe('round deadline passed; discarded');
    ctx.fail('stopped', 'coordinator shutting down');
    expect(run.endedAt).toBeDefined();
    ctx.markResumable('resumes on restart');
    expect(run).toMatchObject({ status: 'running', statusMessage: 'resumes on restart' });
    expect(run.endedAt).toBeUndefined();
    run.versions.push({ version: 3, sha256: 'x', round: 3, createdAt: '' });
    ctx.trimToSaved();
    expect(run.versions).toHaveLength(0);
  });

  it('saves a round\'s participants apart from the record, in the same save, and notes on saved rounds with the next', async () => {
    const store = new MemoryStore();
    const run = record();
    await store.createRun(run);
    const ctx = new RunContext(run, store);
    const list = Array.from({ length: 250 }, (_, i) => ({ agentId: `id-${i}`, name: `sim-${i}`, outcome: i < 240 ? ('completed' as const) : ('late' as const), numExamples: 10, seconds: i / 100, ...(i < 240 ? {} : { reason: 'round deadline passed' }) }));
    ctx.recordRound({ round: 1, baseVersion: 0, version: 1, status: 'completed', startedAt: '', endedAt: '', seconds: 3, bytesReceived: 0, bytesSent: 0 }, 1, list);
    expect((await store.listParticipants(run.id, { limit: 10, offset: 0 })).total).toBe(0); // not saved yet
    await ctx.persist(true); // a doc-only save still writes a recorded round, and its rows
    const saved = await store.getRun(run.id);
    expect(saved!.rounds[0]!.participants).toBeUndefined();
    expect(saved!.rounds[0]!.summary).toMatchObject({ participants: 250, outcomes: { completed: 240, late: 10 }, examples: 2400, seconds: { max: 2.39 } });
    expect(JSON.stringify(saved).length).toBeLessThan(2000);
    ctx.noteLateOutcome(1, 'id-245', 'folded into round 2 (staleness 1)');
    expect((await ctx.listParticipants({ round: 1, status: 'late', limit: 1, offset: 5 })).participants[0]).toMatchObject({ name: 'sim-245', reason: 'round deadline passed; folded into round 2 (staleness 1)' });
    expect((await store.listParticipants(run.id, { round: 1, status: 'late', limit: 1, offset: 5 })).participants[0]!.reason).toBe('round deadline passed');
    await ctx.persist(true);
    const page = await store.listParticipants(run.id, { round: 1, status: 'failed', limit: 3, offset: 4 });
    expect(page.total).toBe(10);
    expect(page.participants.map((p) => [p.round, p.name])).toEqual([[1, 'sim-244'], [1, 'sim-245'], [1, 'sim-246']]);
    expect(page.participants[1]!.reason).toBe('round deadline passed; folded into round 2 (staleness 1)');
  });
});
