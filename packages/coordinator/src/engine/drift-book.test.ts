/** Training profiles in reports become the run's stored fleet reference, which serving agents get back once per change. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseReportReplyBody, type DataProfileCounts } from '@fedge/proto';
import { Coordinator } from '../coordinator.js';
import { parseRunConfig } from '../config/run-config.js';

const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-drift-book-')) });
afterAll(() => coord.close());

const join = (name: string) => coord.join({ name, agentId: '', joinToken: '', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {} }, '127.0.0.1');
const profile = (x: number[], labels: number[]): DataProfileCounts => ({ examples: labels.reduce((a, b) => a + b, 0), features: [{ feature: 'x', counts: x }], labels });

describe('drift book', () => {
  it('stores each agent\'s latest profile with the run and answers serving reports with the summed fleet reference', async () => {
    await coord.store.createRun({ id: 'run-d1', config: parseRunConfig({ model: 'mnist-mlp', rounds: 2 }), status: 'completed', createdAt: new Date().toISOString(), round: 2, modelVersion: 2, rounds: [], versions: [] });
    const a = await join('dr-a');
    const b = await join('dr-b');
    const send = async (who: { agentId: string; sessionToken: string }, body: unknown) =>
      parseReportReplyBody((await coord.report({ agentId: who.agentId, sessionToken: who.sessionToken, bodyJson: JSON.stringify(body) })).bodyJson);

    // No profile yet: a serving report gets nothing back.
    expect(await send(a, { served: { runId: 'run-d1', version: 2 } })).toEqual({});
    await send(a, { profile: { runId: 'run-d1', round: 1, profile: profile([1, 2, 3], [3, 3]) } });
    await send(b, { profile: { runId: 'run-d1', round: 1, profile: profile([0, 5, 0], [5, 0]) } });
    // An older round's profile does not replace a newer one.
    await send(b, { profile: { runId: 'run-d1', round: 2, profile: profile([0, 4, 1], [5, 0]) } });
    await send(b, { profile: { runId: 'run-d1', round: 1, profile: profile([9, 9, 9], [18, 0]) } });

    const stored = await coord.store.getRun('run-d1');
    expect(Object.keys(stored!.driftProfiles!).sort()).toEqual(['dr-a', 'dr-b']);
    expect(stored!.driftProfiles!['dr-b']!.round).toBe(2);

    const r1 = await send(a, { served: { runId: 'run-d1', version: 2 } });
    expect(r1.fleetReference).toMatchObject({ runId: 'run-d1', agents: 2, profile: { examples: 11, features: [{ feature: 'x', counts: [1, 6, 4] }], labels: [8, 3] } });
    // Held: not sent again until a profile changes.
    const key = r1.fleetReference!.key;
    expect(await send(a, { served: { runId: 'run-d1', version: 2, fleetReferenceKey: key } })).toEqual({});
    await send(a, { profile: { runId: 'run-d1', round: 2, profile: profile([1, 1, 1], [3, 0]) } });
    const r2 = await send(a, { served: { runId: 'run-d1', version: 2, fleetReferenceKey: key } });
    expect(r2.fleetReference!.key).not.toBe(key);
    expect(r2.fleetReference!.profile.features[0]!.counts).toEqual([1, 5, 2]);
  });

  it('a profile for a run that does not exist is dropped (logged), and the report still lands', async () => {
    const a = await join('dr-c');
    const r = await coord.report({ agentId: a.agentId, sessionToken: a.sessionToken, bodyJson: JSON.stringify({ served: { runId: 'run-nope', version: 1 }, profile: { runId: 'run-nope', round: 1, profile: profile([1], [1]) } }) });
    expect(JSON.parse(r.bodyJson)).toEqual({});
    expect(coord.listAgents().find((x) => x.id === a.agentId)!.servedRun).toBe('run-nope');
  });
});
