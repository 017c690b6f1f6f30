/** AgentRegistry.announce: new versions go to online agents that may serve them, not to those that said they serve nothing. */
import { describe, expect, it } from 'vitest';
import { SERVES_LABEL, type TaskMsg } from '@fedge/proto';
import { MemoryStore } from '../store/memory-store.js';
import { AgentRegistry } from './agent-registry.js';

const task = { taskId: 'run-1.announce.2', runId: 'run-1', round: 2, modelVersion: 2, kind: 'announce' } as TaskMsg;

function fleet(): { reg: AgentRegistry; told: string[]; ids: Record<string, string> } {
  const reg = new AgentRegistry(new MemoryStore());
  const told: string[] = [];
  const ids: Record<string, string> = {};
  const join = (name: string, labels: Record<string, string>, online = true): void => {
    const { agentId } = reg.join({ name, agentId: '', joinToken: '', backend: 'test', agentVersion: 't', numExamples: 1, labels });
    ids[name] = agentId;
    if (online) reg.attach(agentId, { send: (t) => void told.push(`${name}:${t.kind}`), close: () => undefined });
  };
  join('server', { [SERVES_LABEL]: 'true' });
  join('old-agent', {}); // no label (an older agent): told, as before
  join('trainer', { [SERVES_LABEL]: 'false', zone: 'b' });
  join('offline', {}, false);
  return { reg, told, ids };
}

describe('AgentRegistry.announce', () => {
  it('tells online agents except those that joined saying they serve nothing', () => {
    const { reg, told } = fleet();
    expect(reg.announce(task)).toBe(2);
    expect(told.sort()).toEqual(['old-agent:announce', 'server:announce']);
  });

  it('with `only`, tells just those of them (a canary)', () => {
    const { reg, told, ids } = fleet();
    expect(reg.announce(task, [ids.server!, ids.trainer!, ids.offline!])).toBe(1);
    expect(told).toEqual(['server:announce']);
  });
});
