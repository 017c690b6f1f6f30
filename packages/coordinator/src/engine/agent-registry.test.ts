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

  it('a reconnect with its own id is never a clash', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const a = reg.join(req('edge-1'));
    reg.attach(a.agentId, channel());
    const again = reg.join(req('edge-1', a.agentId));
    expect(again.agentId).toBe(a.agentId);
  });
});
