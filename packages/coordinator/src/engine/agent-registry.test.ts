import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { AgentRegistry } from './agent-registry.js';

const req = (name: string, agentId = '') => ({ name, agentId, joinToken: '', backend: 'test', agentVersion: 't', numExamples: 10, labels: {} });
const channel = () => ({ send: () => undefined, close: () => undefined });

describe('AgentRegistry names', () => {
  it('refuses a second live agent with the same name, naming the fix', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    reg.attach(a.agentId, channel());
    expect(() => reg.join(req('edge-1'))).toThrow(/name: "edge-1" is taken by agent agent-\w+, which is online; give every agent its own --name/);
    // Joined but not yet attached also holds the name for a while (two processes starting at once).
    const b = reg.join(req('edge-2'));
    expect(() => reg.join(req('edge-2'))).toThrow(/E_NAME_TAKEN|is taken/);
    expect(b.agentId).toMatch(/^agent-/);
  });

  it('an agent restarted under the name of an offline agent gets that agent back (same id, history kept)', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    const ch = channel();
    reg.attach(a.agentId, ch);
    reg.release(a.agentId, 'task-1', true);
    reg.detach(a.agentId, ch, 'process exited');
    const again = reg.join(req('edge-1')); // a fresh process: no agent id
    expect(again.agentId).toBe(a.agentId);
    expect(reg.list().filter((x) => x.name === 'edge-1')).toHaveLength(1);
    expect(reg.list()[0]!.tasksCompleted).toBe(1);
  });

  it('records the transport of the latest task channel (an agent may move from gRPC to MQTT)', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    reg.attach(a.agentId, channel());
    expect(reg.list()[0]!.transport).toBeUndefined();
    reg.attach(a.agentId, { ...channel(), transport: 'grpc' });
    expect(reg.list()[0]!.transport).toBe('grpc');
    reg.attach(a.agentId, { ...channel(), transport: 'mqtt' });
    expect(reg.list()[0]!.transport).toBe('mqtt');
  });

  it('a reconnect with its own id is never a clash', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    reg.attach(a.agentId, channel());
    const again = reg.join({ ...req('edge-1', a.agentId), agentSecret: a.agentSecret });
    expect(again.agentId).toBe(a.agentId);
  });
});

describe('AgentRegistry rejoin by id', () => {
  it('refuses a join under a live agent\'s id without its agent_secret, and the live agent keeps its session', () => {
    const reg = new AgentRegistry(new MemoryStore(), 'shared');
    const a = reg.join({ ...req('edge-1'), joinToken: 'shared' });
    const ch = { send: () => undefined, close: () => (closed = true) };
    let closed = false;
    reg.attach(a.agentId, ch);
    for (const agentSecret of [undefined, '', 'f'.repeat(48)])
      expect(() => reg.join({ ...req('edge-1', a.agentId), joinToken: 'shared', ...(agentSecret !== undefined ? { agentSecret } : {}) }))
        .toThrow(/agent_secret: missing or wrong for agent_id "agent-\w+"; only the agent that first joined under an id may rejoin/);
    // Under another name too: the id is what is protected, whatever name comes with it.
    expect(() => reg.join({ ...req('impostor', a.agentId), joinToken: 'shared' })).toThrow(/E_AUTH|agent_secret/);
    expect(reg.verify(a.agentId, a.sessionToken).id).toBe(a.agentId);
    expect(reg.isOnline(a.agentId)).toBe(true);
    expect(closed).toBe(false);
  });

  it('a proven rejoin keeps the id and the secret; the old session token stops working', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    const b = reg.join({ ...req('edge-1', a.agentId), agentSecret: a.agentSecret });
    expect(b.agentId).toBe(a.agentId);
    expect(b.agentSecret).toBe(a.agentSecret);
    expect(() => reg.verify(a.agentId, a.sessionToken)).toThrow(/session_token/);
    expect(reg.verify(b.agentId, b.sessionToken).id).toBe(a.agentId);
  });

  it('the secret outlives a coordinator restart (kept as a hash in the agent record) and is never listed', async () => {
    const store = new MemoryStore();
    const reg = new AgentRegistry(store);
    const a = reg.join(req('edge-1'));
    await new Promise((r) => setTimeout(r, 10)); // join persists in the background
    expect(JSON.stringify(reg.list())).not.toMatch(/secret/i);
    const restarted = new AgentRegistry(store);
    restarted.restore(await store.listAgents());
    expect(() => restarted.join(req('edge-1', a.agentId))).toThrow(/agent_secret/);
    expect(restarted.join({ ...req('edge-1', a.agentId), agentSecret: a.agentSecret }).agentId).toBe(a.agentId);
  });

  it('a restarted agent process (no id, no secret) gets its offline record back by name, with a new secret', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    const ch = channel();
    reg.attach(a.agentId, ch);
    reg.detach(a.agentId, ch, 'process exited');
    const again = reg.join(req('edge-1'));
    expect(again.agentId).toBe(a.agentId);
    expect(again.agentSecret).not.toBe(a.agentSecret);
    expect(() => reg.join({ ...req('edge-1', a.agentId), agentSecret: a.agentSecret })).toThrow(/agent_secret/);
  });
});

describe('AgentRegistry served version', () => {
  it('records the version an agent reports serving, persists it, and clears it on the next join until reported again', async () => {
    const store = new MemoryStore();
    const reg = new AgentRegistry(store);
    const a = reg.join(req('edge-1'));
    const b = reg.join(req('edge-2'));
    let changes = 0;
    reg.on('changed', () => changes++);
    reg.noteServing(a.agentId, 'run-1', 3);
    reg.noteServing(a.agentId, 'run-1', 3); // the same report again changes nothing
    expect(changes).toBe(1);
    reg.noteServing(a.agentId, 'run-1', 2); // a rollback: older versions are recorded too
    const byName = (r: AgentRegistry, n: string) => r.list().find((x) => x.name === n)!;
    expect(byName(reg, 'edge-1')).toMatchObject({ servedRun: 'run-1', servedVersion: 2 });
    expect(byName(reg, 'edge-2').servedVersion).toBeUndefined();
    reg.noteServing('agent-unknown', 'run-1', 1); // ignored, no throw
    await new Promise((r) => setTimeout(r, 10)); // persisted in the background
    const restarted = new AgentRegistry(store);
    restarted.restore(await store.listAgents());
    expect(byName(restarted, 'edge-1')).toMatchObject({ status: 'offline', servedRun: 'run-1', servedVersion: 2 });
    // A new session: the agent process may have restarted with nothing loaded; it reports again once it serves.
    restarted.join(req('edge-1'));
    expect(byName(restarted, 'edge-1').servedVersion).toBeUndefined();
    expect(b.agentId).not.toBe(a.agentId);
  });
});

describe('AgentRegistry lookups without copies', () => {
  it('servedVersions lists what agents of one run report serving; records() and record() hand out the live records', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const ids = ['edge-1', 'edge-2', 'edge-3', 'edge-4'].map((n) => reg.join(req(n)).agentId);
    reg.noteServing(ids[0]!, 'run-1', 3);
    reg.noteServing(ids[1]!, 'run-1', 2);
    reg.noteServing(ids[2]!, 'run-2', 7);
    expect(reg.servedVersions('run-1').sort()).toEqual([2, 3]);
    expect(reg.servedVersions('run-2')).toEqual([7]);
    expect(reg.servedVersions('run-3')).toEqual([]);
    expect(reg.size).toBe(4);
    // The same objects on every call (no copy); list() still copies and drops the secret hash.
    expect([...reg.records()][0]).toBe(reg.record(ids[0]!));
    expect(reg.record(ids[0]!)!.secretSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(reg.list()[0]).not.toBe(reg.record(ids[0]!));
    expect(reg.list()[0]!.secretSha256).toBeUndefined();
    expect(reg.record('agent-unknown')).toBeUndefined();
  });
});
