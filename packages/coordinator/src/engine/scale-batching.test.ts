/** Writes that would be one per agent at fleet scale are batched: agent records per event-loop turn, accepted updates per group commit. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { MemoryStore } from '../store/memory-store.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { AgentRecord, RunRecord } from '../store/store.js';
import { AgentRegistry } from './agent-registry.js';
import { RunContext } from './run-context.js';

const req = (name: string, agentId = '') => ({ name, agentId, joinToken: '', backend: 'test', agentVersion: 't', numExamples: 10, labels: {} });
const channel = () => ({ send: () => undefined, close: () => undefined });
const turn = () => new Promise((r) => setTimeout(r, 300));

describe('agent registry writes', () => {
  it('1,000 joins and attaches within the flush window are one saveAgents call, and every record reaches the store', async () => {
    const store = new MemoryStore();
    const calls: number[] = [];
    const save = store.saveAgents.bind(store);
    store.saveAgents = async (a: readonly AgentRecord[]) => (calls.push(a.length), save(a));
    store.saveAgent = () => Promise.reject(new Error('the registry must batch its writes'));
    const reg = new AgentRegistry(store);
    for (let i = 0; i < 1000; i++) reg.attach(reg.join(req(`sim-${i}`)).agentId, channel());
    expect(calls).toEqual([]);
    await turn();
    expect(calls).toEqual([1000]);
    // A burst right after a write waits for the window and goes in one write too.
    for (const a of reg.list().slice(0, 10)) reg.release(a.id, 'task-1', true);
    expect(calls).toEqual([1000]);
    await turn();
    expect(calls).toEqual([1000, 10]);
    const saved = await store.listAgents();
    expect(saved).toHaveLength(1000);
    expect(saved.every((a) => a.status === 'online')).toBe(true);
  });

  it('the token-agent cap counts and finds agents without copying the records', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    reg.join(req('edge-2'), 'fingerprint-of-an-enrolled-key');
    expect(reg.tokenAgents()).toBe(1);
    expect(reg.knowsTokenAgent(a.agentId, 'someone-else')).toBe(true);
    expect(reg.knowsTokenAgent('', 'edge-1')).toBe(true);
    expect(reg.knowsTokenAgent('', 'edge-2')).toBe(false); // enrolled: not the shared token's
    expect(reg.knowsTokenAgent('agent-nope', 'edge-3')).toBe(false);
  });

  it('a name is still refused while its holder is online, and freed by a join under a new name', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    reg.attach(a.agentId, channel());
    expect(() => reg.join(req('edge-1'))).toThrow(/is taken/);
    // The same agent (its id and secret) rejoins under another name: the old name is free for someone else.
    reg.join({ ...req('edge-1b', a.agentId), agentSecret: a.agentSecret });
    expect(reg.join(req('edge-1')).agentId).not.toBe(a.agentId);
  });

  it('SQLite: saveAgents writes all records in one transaction, readable after a reopen', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-batch-'));
    try {
      const store = SqliteStore.open(dir);
      const reg = new AgentRegistry(store);
      for (let i = 0; i < 200; i++) reg.join(req(`sim-${i}`));
      await reg.flush();
      store.close();
      const again = SqliteStore.open(dir);
      expect((await again.listAgents()).map((a) => a.name).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `sim-${i}`).sort());
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('RunContext.persistSoon', () => {
  it('callers within the window share one save, made after all of them; a later caller gets a later save', async () => {
    const store = new MemoryStore();
    const run: RunRecord = { id: 'run-batch', config: parseRunConfig({}), status: 'running', createdAt: new Date().toISOString(), round: 1, modelVersion: 0, rounds: [], versions: [] };
    await store.createRun(run);
    const ctx = new RunContext(run, store);
    const saved: number[] = [];
    store.saveRun = async (r) => void saved.push(r.openRound?.accepted.length ?? -1);
    ctx.setOpenRound({ round: 1, baseVersion: 0, invitees: [], accepted: [] });
    const waits = Array.from({ length: 50 }, (_, i) => {
      ctx.acceptUpdate({ name: `sim-${i}`, numExamples: 1, weight: 1, staleness: 0, baseVersion: 0, metrics: {}, file: `f${i}`, seconds: 0 });
      return ctx.persistSoon();
    });
    await Promise.all(waits);
    expect(saved).toEqual([50]);
    ctx.acceptUpdate({ name: 'sim-50', numExamples: 1, weight: 1, staleness: 0, baseVersion: 0, metrics: {}, file: 'f50', seconds: 0 });
    await ctx.persistSoon();
    expect(saved).toEqual([50, 51]);
  });

  it('SQLite: a docOnly save writes the open round and leaves the stored rounds alone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-batch-'));
    try {
      const store = SqliteStore.open(dir);
      const round = { round: 1, status: 'completed' as const, startedAt: new Date().toISOString(), participants: [{ agentId: 'a', name: 'sim-0', outcome: 'completed' as const }] };
      const run: RunRecord = { id: 'run-doc', config: parseRunConfig({}), status: 'running', createdAt: new Date().toISOString(), round: 2, modelVersion: 1, rounds: [round as never], versions: [] };
      await store.createRun(run);
      const ctx = new RunContext(run, store);
      ctx.setOpenRound({ round: 2, baseVersion: 1, invitees: [], accepted: [] });
      ctx.acceptUpdate({ name: 'sim-1', numExamples: 1, weight: 1, staleness: 0, baseVersion: 1, metrics: {}, file: 'f1', seconds: 0 });
      await ctx.persistSoon();
      const got = (await store.getRun('run-doc'))!;
      expect(got.openRound?.accepted.map((a) => a.name)).toEqual(['sim-1']);
      expect(got.rounds).toHaveLength(1);
      expect(got.rounds[0]!.participants.map((p) => p.name)).toEqual(['sim-0']);
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
