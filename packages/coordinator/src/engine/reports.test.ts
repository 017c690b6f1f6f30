/** Agent status reports: sections reach their handlers, the served version lands on the agent record, refusals name why. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_REPORT_BODY_CHARS } from '@fedge/proto';
import { Coordinator } from '../coordinator.js';
import { ReportDispatcher } from './reports.js';

const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-reports-')) });
afterAll(() => coord.close());

const join = (name: string) => coord.join({ name, agentId: '', joinToken: '', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {} }, '127.0.0.1');

describe('agent reports', () => {
  it('records the served run and version (no active run needed) for fedge agent list', async () => {
    const a = await join('edge-r1');
    const r = await coord.report({ agentId: a.agentId, sessionToken: a.sessionToken, bodyJson: JSON.stringify({ served: { runId: 'run-finished', version: 4 } }) });
    expect(JSON.parse(r.bodyJson)).toEqual({});
    expect(coord.listAgents().find((x) => x.id === a.agentId)).toMatchObject({ servedRun: 'run-finished', servedVersion: 4 });
    // A heartbeat without the section changes nothing.
    await coord.report({ agentId: a.agentId, sessionToken: a.sessionToken, bodyJson: '{}' });
    expect(coord.listAgents().find((x) => x.id === a.agentId)!.servedVersion).toBe(4);
  });

  it('refuses a bad session, a malformed or oversized body, naming the field; nothing is recorded', async () => {
    const a = await join('edge-r2');
    const send = (bodyJson: string, sessionToken = a.sessionToken) => coord.report({ agentId: a.agentId, sessionToken, bodyJson });
    await expect(send(JSON.stringify({ served: { runId: 'run-x', version: 1 } }), 'ab'.repeat(24))).rejects.toMatchObject({ code: 'E_AUTH' });
    await expect(send('{not json')).rejects.toMatchObject({ code: 'E_VALIDATION', message: expect.stringMatching(/^body_json: not valid JSON/) });
    await expect(send(JSON.stringify({ served: { runId: 'run-x', version: -1 } }))).rejects.toMatchObject({ code: 'E_VALIDATION', message: expect.stringMatching(/body_json\.served\.version/) });
    await expect(send(JSON.stringify({ served: { runId: 'run x/../', version: 1 } }))).rejects.toMatchObject({ message: expect.stringMatching(/body_json\.served\.runId/) });
    await expect(send(JSON.stringify({ drift: { runId: 'run-x', version: 1, window: 10, features: [{ feature: 'f', reference: 'own', psi: 0.1, ks: 2, pValue: 0.5 }], prediction: [] } })))
      .rejects.toMatchObject({ message: expect.stringMatching(/body_json\.drift\.features\.0\.ks/) });
    // Through the transports' request schema (agentReportSchema): the size cap.
    const { agentReportSchema } = await import('@fedge/proto');
    expect(agentReportSchema.safeParse({ agentId: a.agentId, sessionToken: a.sessionToken, bodyJson: `{"x":"${'a'.repeat(MAX_REPORT_BODY_CHARS)}"}` }).success).toBe(false);
    expect(coord.listAgents().find((x) => x.id === a.agentId)!.servedRun).toBeUndefined();
  });

  it('accepts and ignores a section it does not know (a newer agent), and health until someone handles it', async () => {
    const a = await join('edge-r3');
    const body = { served: { runId: 'run-y', version: 2 }, futureSection: { x: 1 }, health: { versions: [{ version: 2, requests: 10, errors: 0, p50Ms: 1, p99Ms: 3 }] } };
    await coord.report({ agentId: a.agentId, sessionToken: a.sessionToken, bodyJson: JSON.stringify(body) });
    expect(coord.listAgents().find((x) => x.id === a.agentId)).toMatchObject({ servedRun: 'run-y', servedVersion: 2 });
  });

  it('dispatches each section to its one registered handler and merges their replies', async () => {
    const d = new ReportDispatcher(coord.registry);
    const seen: string[] = [];
    d.on('served', (s, agent) => void seen.push(`${agent.name}:${s.runId}@${s.version}`));
    d.on('health', () => ({ fleetReference: { runId: 'run-z', key: 'k', agents: 1, profile: { examples: 3, features: [{ feature: 'f', counts: [1, 2] }] } } }));
    expect(() => d.on('served', () => undefined)).toThrow(/already has a handler/);
    const a = await join('edge-r4');
    const reply = await d.dispatch({ agentId: a.agentId, sessionToken: a.sessionToken, bodyJson: JSON.stringify({ served: { runId: 'run-z', version: 7 }, health: { versions: [] } }) });
    expect(seen).toEqual(['edge-r4:run-z@7']);
    expect(reply.fleetReference?.profile.examples).toBe(3);
  });
});
