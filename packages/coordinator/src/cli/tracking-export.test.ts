import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseRunConfig } from '../config/run-config.js';
import type { RoundRecord, RunRecord } from '../store/store.js';
import { CSV_COLUMNS, flattenParams, mlflowRunId, roundsCsv, writeMlflow } from './tracking-export.js';

function round(n: number, extra: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round: n, baseVersion: n - 1, version: n, status: 'completed',
    startedAt: `2026-01-01T00:00:0${n}.000Z`, endedAt: `2026-01-01T00:00:0${n}.500Z`, seconds: 0.5,
    participants: [
      { agentId: 'a', name: 'a', outcome: 'completed' },
      { agentId: 'b', name: 'b', outcome: 'completed' },
      { agentId: 'c', name: 'c', outcome: 'dropped', reason: 'deadline' },
    ],
    trainLoss: 1 / n, federatedAccuracy: [0, 0.6, 0.7, 0.8][n], centralAccuracy: [0, 0.7, 0.8, 0.9][n], epsilon: n * 0.25,
    bytesSent: 1000 * n, bytesReceived: 2000 * n, ...extra,
  };
}

const run: RunRecord = {
  id: 'run-abc123',
  config: parseRunConfig({ model: 'mnist-mlp', rounds: 3, privacy: { mode: 'central', clipNorm: 1, noiseMultiplier: 1, delta: 1e-5 } }),
  status: 'completed', statusMessage: 'completed 3 of 3 rounds, "ok"',
  createdAt: '2026-01-01T00:00:00.000Z', startedAt: '2026-01-01T00:00:00.500Z', endedAt: '2026-01-01T00:00:09.000Z',
  round: 3, modelVersion: 2,
  rounds: [round(1), round(2, { status: 'failed', reason: 'too few results, "x"', version: undefined as never, centralAccuracy: undefined as never }), round(3)],
  versions: [],
};
// exactOptionalPropertyTypes: a failed round has no version/centralAccuracy at all.
delete run.rounds[1]!.version;
delete run.rounds[1]!.centralAccuracy;

describe('roundsCsv', () => {
  it('writes a header and one row per round, empty cells for missing values', () => {
    const lines = roundsCsv(run).trimEnd().split('\n');
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    expect(lines[0]).toBe('round,version,status,completed,failed,trainLoss,federatedAccuracy,centralAccuracy,epsilon,bytesSent,bytesReceived,seconds');
    expect(lines).toHaveLength(4);
    expect(lines[1]).toBe('1,1,completed,2,1,1,0.6,0.7,0.25,1000,2000,0.5');
    expect(lines[2]).toBe('2,,failed,2,1,0.5,0.7,,0.5,2000,4000,0.5');
    expect(lines[3]!.split(',')).toHaveLength(CSV_COLUMNS.length);
  });
});

describe('writeMlflow', () => {
  it('writes an MLflow file-store run: meta.yaml, params, tags and metric files of "timestamp value step" lines', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-mlflow-'));
    const runDir = await writeMlflow(run, dir);
    const id = mlflowRunId(run.id);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(mlflowRunId(run.id)).toBe(id);
    expect(mlflowRunId('run-other')).not.toBe(id);
    expect(runDir).toBe(path.join(dir, 'mlruns', '0', id));
    const expMeta = readFileSync(path.join(dir, 'mlruns', '0', 'meta.yaml'), 'utf8');
    expect(expMeta).toMatch(/^experiment_id: '0'$/m);
    expect(expMeta).toMatch(/^name: Default$/m);
    const meta = readFileSync(path.join(runDir, 'meta.yaml'), 'utf8');
    expect(meta).toMatch(new RegExp(`^run_id: ${id}$`, 'm'));
    expect(meta).toMatch(new RegExp(`^run_uuid: ${id}$`, 'm'));
    expect(meta).toMatch(/^run_name: 'run-abc123'$/m);
    expect(meta).toMatch(/^status: 3$/m);
    expect(meta).toMatch(new RegExp(`^start_time: ${Date.parse(run.startedAt!)}$`, 'm'));
    expect(meta).toMatch(new RegExp(`^end_time: ${Date.parse(run.endedAt!)}$`, 'm'));
    expect(meta).toMatch(/^artifact_uri: 'file:\/\/.*artifacts'$/m);

    expect(readFileSync(path.join(runDir, 'params', 'model'), 'utf8')).toBe('mnist-mlp');
    expect(readFileSync(path.join(runDir, 'params', 'rounds'), 'utf8')).toBe('3');
    expect(readFileSync(path.join(runDir, 'params', 'privacy.noiseMultiplier'), 'utf8')).toBe('1');
    expect(readFileSync(path.join(runDir, 'tags', 'mlflow.runName'), 'utf8')).toBe('run-abc123');
    expect(readFileSync(path.join(runDir, 'tags', 'fedge.status'), 'utf8')).toBe('completed');

    const lines = readFileSync(path.join(runDir, 'metrics', 'central_accuracy'), 'utf8').trimEnd().split('\n');
    expect(lines).toEqual([`${Date.parse(run.rounds[0]!.endedAt)} 0.7 1`, `${Date.parse(run.rounds[2]!.endedAt)} 0.9 3`]);
    const eps = readFileSync(path.join(runDir, 'metrics', 'epsilon'), 'utf8').trimEnd().split('\n');
    expect(eps.map((l) => l.split(' ').slice(1).join(' '))).toEqual(['0.25 1', '0.5 2', '0.75 3']);
    expect(readdirSync(path.join(runDir, 'metrics'))).toEqual(
      expect.arrayContaining(['train_loss', 'federated_accuracy', 'bytes_sent', 'bytes_received', 'round_seconds', 'completed', 'failed']),
    );
    expect(existsSync(path.join(runDir, 'metrics', 'train_accuracy'))).toBe(false); // no values, no file
    // Exporting again overwrites the same run.
    expect(await writeMlflow(run, dir)).toBe(runDir);
    expect(readdirSync(path.join(dir, 'mlruns', '0')).sort()).toEqual([id, 'meta.yaml'].sort());
  });

  it('flattens nested config into dotted params', () => {
    expect(flattenParams({ a: 1, b: { c: 'x', d: [1, 2] }, e: undefined })).toEqual({ a: '1', 'b.c': 'x', 'b.d': '[1,2]' });
  });
});
