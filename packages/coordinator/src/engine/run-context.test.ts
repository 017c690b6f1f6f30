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

  it('transitions: rounds sorted, late outcomes noted, shutdown leaves the run resumable, a restart trims unsaved versions', () => {
    const run = record();
    const ctx = new RunContext(run, new MemoryStore());
    const rr = (round: number) => ({ round, baseVersion: round - 1, version: round, status: 'completed' as const, startedAt: '', endedAt: '', seconds: 0, participants: [{ agentId: 'a', name: 'a', outcome: 'late' as const, reason: 'round deadline passed' }], bytesReceived: 0, bytesSent: 0 });
    ctx.recordRound(rr(2), 2);
    ctx.recordRound(rr(1), 2);
    expect(run.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(run.round).toBe(2);
    ctx.noteLateOutcome(1, 'a', 'discarded');
    expect(run.rounds[0]!.participants[0]!.reason).toBe('round deadline passed; discarded');
    ctx.fail('stopped', 'coordinator shutting down');
    expect(run.endedAt).toBeDefined();
    ctx.markResumable('resumes on restart');
    expect(run).toMatchObject({ status: 'running', statusMessage: 'resumes on restart' });
    expect(run.endedAt).toBeUndefined();
    run.versions.push({ version: 3, sha256: 'x', round: 3, createdAt: '' });
    ctx.trimToSaved();
    expect(run.versions).toHaveLength(0);
  });
});
