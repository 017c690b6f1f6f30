import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseRunConfig } from '../config/run-config.js';
import type { RoundRecord, RunData, RunRecord } from '../store/store.js';
import { CSV_COLUMNS, csvColumns, flattenParams, mlflowRunId, roundsCsv, writeMlflow } from './tracking-export.js';

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

// ---------------------------------------------------------------- a run with a task (regression on a CSV)

const FP_A = 'a'.repeat(64);
const FP_B = '0123456789abcdef'.repeat(4);
const data: RunData = {
  task: { type: 'regression', loss: 'huber', huberDelta: 2, optimizer: { name: 'adam', learningRate: 0.001, beta1: 0.9 }, metrics: ['rmse', 'r2'], outputs: 1 },
  preprocessing: {
    normalization: 'zscore',
    features: [{ name: 'sqft', kind: 'numeric', shift: 1500, scale: 350, mean: 1500 }, { name: 'city', kind: 'categorical', values: ['paris', 'lyon'] }],
    targets: [{ name: 'price', kind: 'numeric' }],
    inputWidth: 3,
  },
  statistics: [
    { name: 'sqft', type: 'numeric', count: 4, missing: 0, sum: 6000, sumSq: 9.5e6, min: 1000, max: 2000, integer: true },
    { name: 'city', type: 'categorical', count: 4, missing: 0, values: { paris: 3, lyon: 1 }, truncated: false },
    { name: 'price', type: 'numeric', count: 4, missing: 0, sum: 1000, sumSq: 260_000, min: 200, max: 300, integer: false },
  ],
  n: 4,
  agents: [
    { agentId: 'id-a', name: 'edge/a', format: 'csv', n: 3, fingerprint: FP_A },
    { agentId: 'id-b', name: 'edge-b', format: 'csv', n: 1, fingerprint: FP_B },
  ],
  refused: [{ agentId: 'id-c', name: 'edge-c', reason: "column 'sqft': categorical here, numeric in the fleet" }],
  preparedAt: '2026-01-01T00:00:00.000Z',
};

function taskRound(n: number): RoundRecord {
  return {
    ...round(n),
    participants: [
      { agentId: 'id-a', name: 'edge/a', outcome: 'completed', numExamples: 3, fingerprint: FP_A },
      { agentId: 'id-b', name: 'edge-b', outcome: 'completed', numExamples: 1, fingerprint: FP_B },
    ],
    trainMetrics: { loss: 3 / n, rmse: 5 / n, r2: 0.5 },
    federatedMetrics: { loss: 2 / n, rmse: 4 / n, r2: 0.6 },
    centralMetrics: { loss: 1 / n, rmse: 3 / n, r2: 0.7 },
    federatedLoss: 2 / n, centralLoss: 1 / n,
  };
}

const taskRun: RunRecord = {
  id: 'run-task', status: 'completed', createdAt: '2026-01-01T00:00:00.000Z', startedAt: '2026-01-01T00:00:00.500Z', endedAt: '2026-01-01T00:00:09.000Z',
  config: parseRunConfig({ model: { builtin: 'mlp' }, rounds: 2, task: { type: 'regression', target: 'price', loss: 'huber', huberDelta: 2, metrics: ['rmse', 'r2'] } }),
  round: 2, modelVersion: 2, rounds: [taskRound(1), taskRound(2)], versions: [], data,
};
delete taskRun.rounds[0]!.centralAccuracy;
delete taskRun.rounds[1]!.centralAccuracy;
delete taskRun.rounds[0]!.federatedAccuracy;
delete taskRun.rounds[1]!.federatedAccuracy;

describe('export of a run with a task', () => {
  it('the CSV gains a column per task metric and source, and the evaluation losses', () => {
    expect(csvColumns(run)).toEqual([...CSV_COLUMNS]);
    const lines = roundsCsv(taskRun).trimEnd().split('\n');
    expect(lines[0]).toBe(`${CSV_COLUMNS.join(',')},train_rmse,federated_rmse,central_rmse,train_r2,federated_r2,central_r2,federated_loss,central_loss`);
    expect(lines[2]!.split(',').slice(CSV_COLUMNS.length)).toEqual(['2.5', '2', '1.5', '0.5', '0.6', '0.7', '1', '0.5']);
  });

  it('MLflow gets every task metric per round, the resolved task and preprocessing, lineage tags and data artifacts', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-mlflow-task-'));
    const runDir = await writeMlflow(taskRun, dir);
    const metric = (name: string): string[] => readFileSync(path.join(runDir, 'metrics', name), 'utf8').trimEnd().split('\n').map((l) => l.split(' ').slice(1).join(' '));
    expect(metric('central_rmse')).toEqual(['3 1', '1.5 2']);
    expect(metric('federated_r2')).toEqual(['0.6 1', '0.6 2']);
    expect(metric('train_rmse')).toEqual(['5 1', '2.5 2']);
    expect(metric('central_loss')).toEqual(['1 1', '0.5 2']); // shared with the fixed series: one line per round
    expect(metric('train_loss')).toEqual(['1 1', '0.5 2']); // the record's trainLoss wins over trainMetrics.loss
    expect(existsSync(path.join(runDir, 'metrics', 'central_accuracy'))).toBe(false);

    const param = (k: string): string => readFileSync(path.join(runDir, 'params', k), 'utf8');
    expect(param('task.type')).toBe('regression');
    expect(param('task.loss')).toBe('huber');
    expect(param('task.huberDelta')).toBe('2');
    expect(param('task.optimizer.name')).toBe('adam');
    expect(param('task.optimizer.learningRate')).toBe('0.001');
    expect(param('task.metrics')).toBe('rmse,r2');
    expect(param('preprocessing.normalization')).toBe('zscore');
    expect(param('preprocessing.inputWidth')).toBe('3');
    expect(param('preprocessing.targets')).toBe('price');
    expect(param('data.examples')).toBe('4');
    expect(param('data.agents')).toBe('2');

    const tag = (k: string): string => readFileSync(path.join(runDir, 'tags', k), 'utf8');
    expect(tag('fedge.data.fingerprint.edge_a')).toBe(FP_A); // '/' in a name cannot be a file-store key
    expect(tag('fedge.data.fingerprint.edge-b')).toBe(FP_B);
    expect(tag('fedge.data.refused.edge-c')).toContain("column 'sqft'");

    const art = (f: string): { [k: string]: unknown } => JSON.parse(readFileSync(path.join(runDir, 'artifacts', f), 'utf8')) as { [k: string]: unknown };
    expect(art('statistics.json')).toMatchObject({ n: 4, columns: data.statistics });
    expect(art('preprocessing.json')).toMatchObject({ task: { type: 'regression' }, preprocessing: { inputWidth: 3 } });
    const lineage = art('lineage.json') as { agents: unknown[]; versions: { version: number; participants: { name: string; fingerprint: string }[] }[] };
    expect(lineage.agents).toHaveLength(2);
    expect(lineage.versions[1]).toMatchObject({ version: 2, participants: [{ name: 'edge/a', fingerprint: FP_A }, { name: 'edge-b', fingerprint: FP_B }] });
  });

  it('a run without a task writes no data params, tags or artifacts', async () => {
    const runDir = await writeMlflow(run, mkdtempSync(path.join(tmpdir(), 'fedge-mlflow-legacy-')));
    expect(readdirSync(path.join(runDir, 'artifacts'))).toEqual([]);
    expect(readdirSync(path.join(runDir, 'tags')).some((t) => t.startsWith('fedge.data.'))).toBe(false);
    expect(existsSync(path.join(runDir, 'params', 'preprocessing.normalization'))).toBe(false);
  });
});
