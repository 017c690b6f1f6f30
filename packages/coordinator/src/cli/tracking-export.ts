/**
 * `fedge run export`: a run's per-round metrics as CSV, or as an MLflow file-store run (`mlruns/0/<run_id>/`) that
 * `mlflow ui --backend-store-uri DIR/mlruns` reads: meta.yaml, params/<key>, tags/<key> and metrics/<key> files with
 * `timestamp value step` lines (timestamp in ms, step = round).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RoundRecord, RunRecord } from '../store/store.js';

export const CSV_COLUMNS = [
  'round', 'version', 'status', 'completed', 'failed', 'trainLoss', 'federatedAccuracy', 'centralAccuracy',
  'epsilon', 'bytesSent', 'bytesReceived', 'seconds',
] as const;

type Row = Record<(typeof CSV_COLUMNS)[number], string | number | undefined>;

/** The flat per-round metrics every output shares: `run show --format json`, the CSV and the MLflow series. */
export function roundMetrics(r: RoundRecord) {
  const completed = r.participants.filter((p) => p.outcome === 'completed').length;
  return {
    round: r.round,
    version: r.version,
    status: r.status,
    seconds: r.seconds,
    completed,
    failed: r.participants.length - completed,
    trainLoss: r.trainLoss,
    trainAccuracy: r.trainAccuracy,
    federatedLoss: r.federatedLoss,
    federatedAccuracy: r.federatedAccuracy,
    centralLoss: r.centralLoss,
    centralAccuracy: r.centralAccuracy,
    bytesSent: r.bytesSent,
    bytesReceived: r.bytesReceived,
    epsilon: r.epsilon,
    clipNorm: r.clipNorm,
  };
}

function csvCell(v: string | number | undefined): string {
  if (v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Per-round metrics, one line per round record (header first; empty cells for values a round does not have). */
export function roundsCsv(run: Pick<RunRecord, 'rounds'>): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of run.rounds) {
    const row: Row = roundMetrics(r);
    lines.push(CSV_COLUMNS.map((c) => csvCell(row[c])).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** MLflow run ids are 32 hex characters; derive one from the fedge run id so re-exporting overwrites the same run. */
export function mlflowRunId(runId: string): string {
  return createHash('sha256').update(`fedge-run:${runId}`).digest('hex').slice(0, 32);
}

/** Flattens the run config into MLflow params (nested keys joined with '.'); values are strings. */
export function flattenParams(v: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flattenParams(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (v !== undefined && prefix) out[prefix] = typeof v === 'string' ? v : JSON.stringify(v);
  return out;
}

const yamlString = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const ms = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) : undefined);
/** MLflow keys: alphanumerics, _ - . space / only. */
const safeKey = (k: string): string => k.replace(/[^A-Za-z0-9_\-. /]/g, '_');

/** MLflow RunStatus: RUNNING 1, SCHEDULED 2, FINISHED 3, FAILED 4, KILLED 5. */
const STATUS: Record<RunRecord['status'], number> = { pending: 2, waiting: 1, running: 1, completed: 3, failed: 4, stopped: 5 };

/** The metric series an MLflow export gets, per round (step = round; undefined values are skipped). */
export const MLFLOW_METRICS: Record<string, (r: RoundRecord) => number | undefined> = {
  train_loss: (r) => r.trainLoss,
  train_accuracy: (r) => r.trainAccuracy,
  federated_loss: (r) => r.federatedLoss,
  federated_accuracy: (r) => r.federatedAccuracy,
  central_loss: (r) => r.centralLoss,
  central_accuracy: (r) => r.centralAccuracy,
  epsilon: (r) => r.epsilon,
  clip_norm: (r) => r.clipNorm,
  completed: (r) => roundMetrics(r).completed,
  failed: (r) => roundMetrics(r).failed,
  bytes_sent: (r) => r.bytesSent,
  bytes_received: (r) => r.bytesReceived,
  round_seconds: (r) => r.seconds,
  model_version: (r) => r.version,
};

/**
 * Writes the run into an MLflow file store rooted at `dir` (creating `dir/mlruns/0/` with the Default experiment's
 * meta.yaml if missing); returns the run directory.
 */
export async function writeMlflow(run: RunRecord, dir: string): Promise<string> {
  const root = path.resolve(dir, 'mlruns');
  const exp = path.join(root, '0');
  const id = mlflowRunId(run.id);
  const runDir = path.join(exp, id);
  await Promise.all(['metrics', 'params', 'tags', 'artifacts'].map((d) => mkdir(path.join(runDir, d), { recursive: true })));
  const created = ms(run.createdAt) ?? Date.now();
  await writeFile(
    path.join(exp, 'meta.yaml'),
    [
      `artifact_location: ${yamlString(`file://${exp}`)}`,
      `creation_time: ${created}`,
      'experiment_id: \'0\'',
      `last_update_time: ${created}`,
      'lifecycle_stage: active',
      'name: Default',
      '',
    ].join('\n'),
  );
  const start = ms(run.startedAt) ?? created;
  const end = run.endedAt ? ms(run.endedAt) : undefined;
  await writeFile(
    path.join(runDir, 'meta.yaml'),
    [
      `artifact_uri: ${yamlString(`file://${path.join(runDir, 'artifacts')}`)}`,
      `end_time: ${end ?? 'null'}`,
      'entry_point_name: \'\'',
      'experiment_id: \'0\'',
      'lifecycle_stage: active',
      `run_id: ${id}`,
      `run_name: ${yamlString(run.id)}`,
      `run_uuid: ${id}`,
      'source_name: \'\'',
      'source_type: 4',
      'source_version: \'\'',
      `start_time: ${start}`,
      `status: ${STATUS[run.status]}`,
      'tags: []',
      'user_id: fedge',
      '',
    ].join('\n'),
  );
  for (const [k, v] of Object.entries(flattenParams(run.config))) await writeFile(path.join(runDir, 'params', safeKey(k)), v.slice(0, 6000));
  const tags: Record<string, string> = {
    'mlflow.runName': run.id,
    'mlflow.user': 'fedge',
    'mlflow.source.name': 'fedge',
    'fedge.run_id': run.id,
    'fedge.status': run.status,
    ...(run.statusMessage ? { 'fedge.status_message': run.statusMessage } : {}),
    ...(run.modelPath ? { 'fedge.model_path': run.modelPath } : {}),
    'fedge.model_version': String(run.modelVersion),
  };
  for (const [k, v] of Object.entries(tags)) await writeFile(path.join(runDir, 'tags', k), v);
  for (const [name, get] of Object.entries(MLFLOW_METRICS)) {
    const lines: string[] = [];
    for (const r of run.rounds) {
      const v = get(r);
      if (v === undefined || !Number.isFinite(v)) continue;
      lines.push(`${ms(r.endedAt) ?? start} ${v} ${r.round}`);
    }
    if (lines.length) await writeFile(path.join(runDir, 'metrics', name), `${lines.join('\n')}\n`);
  }
  return runDir;
}
