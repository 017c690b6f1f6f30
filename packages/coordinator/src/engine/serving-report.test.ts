/** A `serving` submit (what an agent serves now) lands on the agent record without an active run, and carries no payload. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resultHeaderSchema, type ResultHeaderMsg } from '@fedge/proto';
import { Coordinator } from '../coordinator.js';

const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-serving-report-')) });
afterAll(() => coord.close());

const report = (agentId: string, sessionToken: string, over: Partial<ResultHeaderMsg> = {}): ResultHeaderMsg =>
  resultHeaderSchema.parse({
    agentId, sessionToken, taskId: 'task-1', runId: 'run-finished', round: 0, modelVersion: 4, kind: 'serving',
    numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: {}, ...over,
  }) as ResultHeaderMsg;

describe('serving reports', () => {
  it('records the served run and version for fedge agent list, refusing a payload or a bad session', async () => {
    const a = await coord.join({ name: 'edge-s', agentId: '', joinToken: '', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {} }, '127.0.0.1');
    const sink = await coord.beginUpload(report(a.agentId, a.sessionToken));
    expect(() => sink.write(0, new Uint8Array(4))).toThrow(/no payload/);
    expect(await sink.commit()).toEqual({ accepted: true, reason: '', message: '' });
    expect(coord.listAgents().find((x) => x.id === a.agentId)).toMatchObject({ servedRun: 'run-finished', servedVersion: 4 });

    await expect(coord.beginUpload(report(a.agentId, a.sessionToken, { totalBytes: 8 }))).rejects.toMatchObject({ reason: 'malformed', message: expect.stringMatching(/total_bytes/) });
    await expect(coord.beginUpload(report(a.agentId, 'ab'.repeat(24)))).rejects.toMatchObject({ code: 'E_AUTH' });
    expect(coord.listAgents().find((x) => x.id === a.agentId)!.servedVersion).toBe(4);
  });
});
