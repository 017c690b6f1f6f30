import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { AgentRegistry } from './agent-registry.js';
import { parseAgentQuery, queryAgents, summarizeAgents, type AgentQuery } from './agent-query.js';

const req = (name: string, extra: Partial<{ backend: string; labels: Record<string, string> }> = {}) => ({ name, agentId: '', joinToken: '', backend: 'echo', agentVersion: '1.0', numExamples: 10, labels: {}, ...extra });
const channel = (transport?: 'grpc' | 'mqtt') => ({ send: () => undefined, close: () => undefined, ...(transport ? { transport } : {}) });
const task = (id: string) => ({ taskId: id, runId: 'run-1', round: 1, kind: 'train' }) as never;

/** n agents named sim-000 .. sim-(n-1), all online over MQTT, joined in a shuffled order. */
function fleet(n: number): AgentRegistry {
  const reg = new AgentRegistry(new MemoryStore());
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => ((a * 7919) % n) - ((b * 7919) % n));
  for (const i of order) reg.attach(reg.join(req(`sim-${String(i).padStart(3, '0')}`)).agentId, channel('mqtt'));
  return reg;
}

const q = (raw: Record<string, unknown> = {}): AgentQuery => parseAgentQuery(raw);

/** Every page of a listing, following `next`; `between` runs after each page (agents joining meanwhile). */
function pages(reg: AgentRegistry, raw: Record<string, unknown>, between?: (page: number) => void): string[][] {
  const out: string[][] = [];
  let after: string | undefined;
  for (;;) {
    const p = queryAgents(reg, q({ ...raw, ...(after ? { after } : {}) }));
    out.push(p.agents.map((a) => a.name));
    between?.(out.length);
    if (!p.next) return out;
    after = p.next;
  }
}

describe('agent list paging', () => {
  it('pages through every agent once, in name order, with totals, skipped counts and a next cursor until the last page', () => {
    const reg = fleet(50);
    const first = queryAgents(reg, q({ limit: 20 }));
    expect(first.agents.map((a) => a.name)).toEqual(Array.from({ length: 20 }, (_, i) => `sim-${String(i).padStart(3, '0')}`));
    expect(first).toMatchObject({ total: 50, skipped: 0, fleet: 50, next: first.agents[19]!.id });
    const second = queryAgents(reg, q({ limit: 20, after: first.next }));
    expect(second).toMatchObject({ total: 50, skipped: 20 });
    expect(second.agents[0]!.name).toBe('sim-020');
    const third = queryAgents(reg, q({ limit: 20, after: second.next }));
    expect(third.agents).toHaveLength(10);
    expect(third).toMatchObject({ skipped: 40 });
    expect(third.next).toBeUndefined();
    expect(pages(reg, { limit: 20 }).flat()).toEqual(reg.list().map((a) => a.name).sort());
    // limit 0: everything on one page, no cursor; the records carry no secret hash.
    const all = queryAgents(reg, q({}));
    expect(all.agents).toHaveLength(50);
    expect(all.next).toBeUndefined();
    expect(all.agents.every((a) => a.secretSha256 === undefined)).toBe(true);
  });

  it('a page exactly filling the rest has no next cursor', () => {
    const reg = fleet(40);
    const p = queryAgents(reg, q({ limit: 20, after: queryAgents(reg, q({ limit: 20 })).next }));
    expect(p.agents).toHaveLength(20);
    expect(p.next).toBeUndefined();
  });

  it('is stable while agents join between pages: nothing listed twice, no agent present from the start skipped', () => {
    const reg = fleet(50);
    const before = new Set(reg.list().map((a) => a.name));
    let k = 0;
    // After each page, three agents join: one sorting before everything listed, one in the middle, one at the end.
    const listed = pages(reg, { limit: 20 }, () => {
      for (const name of [`aaa-${k}`, `sim-025-${k}`, `zzz-${k}`]) reg.attach(reg.join(req(name)).agentId, channel('mqtt'));
      k++;
    }).flat();
    expect(new Set(listed).size).toBe(listed.length);
    for (const name of before) expect(listed).toContain(name);
    // Joiners sorting after the cursor are listed on a later page; those before it are not (the next listing has them).
    expect(listed.filter((n) => n.startsWith('aaa-'))).toEqual([]);
    expect(listed.filter((n) => n.startsWith('zzz-')).length).toBeGreaterThan(0);
    expect(listed).toEqual([...listed].sort());
  });

  it('filters by state (busy and idle split online), name prefix, served version, backend, transport and site', () => {
    const reg = fleet(10);
    const [a0, a1, a2] = [...reg.records()].filter((r) => ['sim-000', 'sim-001', 'sim-002'].includes(r.name)).sort((x, y) => (x.name < y.name ? -1 : 1)).map((r) => r.id);
    reg.assign(a0!, task('t-0'));
    reg.noteServing(a1!, 'run-1', 4);
    reg.noteServing(a2!, 'run-1', 4);
    const off = reg.join(req('gone-1', { backend: 'onnx' }));
    const ch = channel('grpc');
    reg.attach(off.agentId, ch);
    reg.detach(off.agentId, ch, 'exited');
    reg.attach(reg.join(req('site-a', { labels: { 'fedge.site': 'factory-3', 'fedge.site-agents': '120' } })).agentId, channel('grpc'));
    const names = (raw: Record<string, unknown>) => queryAgents(reg, q(raw)).agents.map((a) => a.name);
    expect(names({ state: 'busy' })).toEqual(['sim-000']);
    expect(names({ state: 'offline' })).toEqual(['gone-1']);
    expect(names({ state: 'online' })).toHaveLength(11);
    expect(names({ state: 'idle' })).toHaveLength(10);
    expect(names({ serving: '4' })).toEqual(['sim-001', 'sim-002']);
    expect(names({ serving: 'none' })).toHaveLength(10);
    expect(names({ name: 'sim-00' })).toHaveLength(10);
    expect(names({ backend: 'onnx' })).toEqual(['gone-1']);
    expect(names({ transport: 'grpc' })).toEqual(['gone-1', 'site-a']);
    expect(names({ site: 'factory-3' })).toEqual(['site-a']);
    expect(names({ state: 'online', serving: '4', limit: 1 })).toEqual(['sim-001']);
    const p = queryAgents(reg, q({ serving: '4', limit: 1 }));
    expect(p).toMatchObject({ total: 2, fleet: 12, next: a1 });
  });

  it('summarizes by state, served version, backend, transport, agent version, site and auth in one pass', () => {
    const reg = fleet(10);
    const ids = [...reg.records()].map((r) => r.id);
    reg.assign(ids[0]!, task('t-0'));
    reg.noteServing(ids[1]!, 'run-1', 4);
    reg.attach(reg.join(req('site-a', { labels: { 'fedge.site': 'factory-3', 'fedge.site-agents': '120' } })).agentId, channel('grpc'));
    reg.join(req('late', { backend: 'onnx' })); // joined, never attached: offline, no transport
    const s = summarizeAgents(reg.records());
    expect(s).toEqual({
      total: 12,
      fleet: 12,
      state: { online: 11, busy: 1, idle: 10, offline: 1 },
      serving: { none: 11, 'run-1 v4': 1 },
      backend: { echo: 11, onnx: 1 },
      transport: { mqtt: 10, grpc: 1, none: 1 },
      agentVersion: { '1.0': 12 },
      sites: { 'factory-3': 120 },
      auth: { token: 12, key: 0 },
    });
    expect(summarizeAgents(reg.records(), q({ transport: 'mqtt' }))).toMatchObject({ total: 10, fleet: 12, state: { online: 10, busy: 1, idle: 9, offline: 0 } });
  });

  it('refuses bad input naming the field (or the flag), and an unknown cursor naming the fix', () => {
    const reg = fleet(3);
    expect(() => parseAgentQuery({ limit: -1 }, '--')).toThrow(/^--limit: .*>=0.* \(got -1\)$/);
    expect(() => parseAgentQuery({ limit: 'lots' }, '--')).toThrow(/^--limit: /);
    expect(() => parseAgentQuery({ limit: 1.5 })).toThrow(/^limit: /);
    expect(() => parseAgentQuery({ state: 'asleep' }, '--')).toThrow(/^--state: expected one of online, offline, busy, idle \(got "asleep"\)$/);
    expect(() => parseAgentQuery({ serving: 'v3' }, '--')).toThrow(/^--serving: expected a version number or "none"/);
    expect(() => parseAgentQuery({ transport: 'http' })).toThrow(/^transport: expected grpc or mqtt/);
    expect(() => parseAgentQuery({ colour: 'red' })).toThrow(/^colour: not a filter of the agent list; use limit, after, state, name, site, serving, backend, transport$/);
    // Empty strings are "not given" (proto3 defaults); limit is coerced from a string (query strings, proto int64).
    expect(parseAgentQuery({ state: '', after: '', limit: '20' })).toEqual({ limit: 20 });
    expect(() => queryAgents(reg, q({ after: 'agent-nope' }))).toThrow(/^after: no agent "agent-nope" on this coordinator .*list from the start without it$/);
  });

  it('lists 10,000 agents a page at a time without copying the fleet', () => {
    const reg = fleet(10_000);
    const t = performance.now();
    const p = queryAgents(reg, q({ limit: 500 }));
    const ms = performance.now() - t;
    expect(p.agents).toHaveLength(500);
    expect(p.total).toBe(10_000);
    // Generous for a shared 2-core machine; the point is a page is not the whole list's cost.
    expect(ms).toBeLessThan(500);
  });
});
