/**
 * `fedge run export`: a run's per-round metrics as CSV, or as an MLflow file-store run (`mlruns/0/<run_id>/`) that
 * `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri DIR/mlruns` reads (MLflow 3 refuses file stores without
 * that variable; `mlflow migrate-filestore` moves one into SQLite; live logging to a tracking server is
 * tracking/mlflow-tracker.ts): meta.yaml, params/<key>, tags/<key> and metrics/<key> files with
 * `timestamp value step` lines (timestamp in ms, step = round). Runs with a task add their task metrics, the resolved
 * task and preprocessing (params), each agent's dataset fingerprint (tags) and statistics/lineage JSON (artifacts).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RoundRecord, RunData, RunRecord } from '../store/store.js';
import { completedOf, roundSummary } from '../store/round-summary.js';

export const CSV_COLUMNS = [
  'round', 'version', 'status', 'completed', 'failed', 'trainLoss', 'federatedAccuracy', 'centralAccuracy',
  'epsilon', 'bytesSent', 'bytesReceived', 'seconds',
] as const;

type Row = Record<(typeof CSV_COLUMNS)[number], string | number | undefined>;

/** The sources of a round's task metrics and their column/series prefixes (as MLflow names them: central_rmse). */
const SOURCES = [['train', 'trainMetrics'], ['federated', 'federatedMetrics'], ['central', 'centralMetrics']] as const;

/**
 * CSV columns of a run: the fixed ones, then for a run with a task each of its metrics per source (train_rmse,
 * federated_rmse, central_rmse, ...) and the evaluation losses. Runs without a task keep exactly the fixed columns.
 */
export function csvColumns(run: Pick<RunRecord, 'data'>): string[] {
  if (!run.data) return [...CSV_COLUMNS];
  const names = run.data.task.metrics;
  return [...CSV_COLUMNS, ...names.flatMap((m) => SOURCES.map(([p]) => `${p}_${m}`)), 'federated_loss', 'central_loss'];
}

/** A round's value for a csvColumns() column. */
function cell(r: RoundRecord, row: Row, column: string): string | number | undefined {
  if (column in row) return row[column as keyof Row];
  if (column === 'federated_loss') return r.federatedLoss;
  if (column === 'central_loss') return r.centralLoss;
  for (const [prefix, key] of SOURCES) if (column.startsWith(`${prefix}_`)) return r[key]?.[column.slice(prefix.length + 1)];
  return undefined;
}

/** The flat per-round metrics every output shares: `run show --format json`, the CSV and the MLflow series. */
export function roundMetrics(r: RoundRecord) {
  const { completed, total } = completedOf(r);
  return {
    round: r.round,
    version: r.version,
    status: r.status,
    seconds: r.seconds,
    completed,
    failed: total - completed,
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
    trainMetrics: r.trainMetrics,
    federatedMetrics: r.federatedMetrics,
    centralMetrics: r.centralMetrics,
  };
}

function csvCell(v: string | number | undefined): string {
  if (v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Per-round metrics, one line per round record (header first; empty cells for values a round does not have). */
export function roundsCsv(run: Pick<RunRecord, 'rounds' | 'data'>): string {
  const columns = csvColumns(run);
  const lines = [columns.join(',')];
  for (const r of run.rounds) {
    const row: Row = roundMetrics(r);
    lines.push(columns.map((c) => csvCell(cell(r, row, c))).join(','));
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
export const ms = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) : undefined);
/** MLflow keys: alphanumerics, _ - . space / only. */
export const safeKey = (k: string): string => k.replace(/[^A-Za-z0-9_\-. /]/g, '_');

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
  participants: (r) => roundSummary(r).participants,
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
  const params = { ...flattenParams(run.config), ...(run.data ? dataParams(run.data) : {}) };
  for (const [k, v] of Object.entries(params)) await writeFile(path.join(runDir, 'params', safeKey(k).slice(0, MAX_KEY)), v.slice(0, MAX_PARAM_VALUE));
  const tags = mlflowTags(run);
  for (const [k, v] of Object.entries(tags)) await writeFile(path.join(runDir, 'tags', k), v.slice(0, MAX_TAG_VALUE));
  for (const [name, lines] of metricSeries(run, start)) await writeFile(path.join(runDir, 'metrics', name), `${lines.join('\n')}\n`);
  if (run.data) await writeArtifacts(run, path.join(runDir, 'artifacts'));
  return runDir;
}

/** The run's MLflow tags: who made it, its fedge id, status and model, and its data lineage. */
export function mlflowTags(run: RunRecord): Record<string, string> {
  return {
    'mlflow.runName': run.id,
    'mlflow.user': 'fedge',
    'mlflow.source.name': 'fedge',
    'fedge.run_id': run.id,
    'fedge.status': run.status,
    ...(run.statusMessage ? { 'fedge.status_message': run.statusMessage } : {}),
    ...(run.modelPath ? { 'fedge.model_path': run.modelPath } : {}),
    'fedge.model_version': String(run.modelVersion),
    ...(run.data ? lineageTags(run.data) : {}),
  };
}

/** MLflow's limits (mlflow/utils/validation.py): longer params are refused by a tracking server, so cut here. */
export const MAX_KEY = 250;
export const MAX_PARAM_VALUE = 6000;
export const MAX_TAG_VALUE = 5000;

/**
 * Every metric series, name -> "timestamp value step" lines: the fixed ones, then each task metric per source
 * (train_rmse, federated_f1, central_r2; train_loss and central_accuracy are shared with the fixed series, so a
 * value the record holds twice is written once).
 */
export function metricSeries(run: Pick<RunRecord, 'rounds'>, start: number): Map<string, string[]> {
  // Per series: round record index -> value, in record order.
  const series = new Map<string, Map<number, number>>();
  run.rounds.forEach((r, i) => {
    for (const [name, v] of Object.entries(roundMetricValues(r))) {
      const s = series.get(name) ?? new Map<number, number>();
      series.set(name, s);
      s.set(i, v);
    }
  });
  const line = (i: number, v: number): string => `${ms(run.rounds[i]!.endedAt) ?? start} ${v} ${run.rounds[i]!.round}`;
  return new Map([...series].map(([name, s]) => [name, [...s].map(([i, v]) => line(i, v))]));
}

/**
 * One round's MLflow metrics, name -> value (finite values only): the fixed series, then each task metric per source
 * (train_rmse, federated_f1, central_r2; train_loss and central_accuracy are shared with the fixed series, so a value
 * the record holds twice is kept once). The file export and live tracking (tracking/mlflow-tracker.ts) both use it.
 */
export function roundMetricValues(r: RoundRecord): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (name: string, v: number | undefined): void => {
    if (v !== undefined && Number.isFinite(v) && !(name in out)) out[name] = v;
  };
  for (const [name, get] of Object.entries(MLFLOW_METRICS)) put(name, get(r));
  for (const [prefix, key] of SOURCES) for (const [m, v] of Object.entries(r[key] ?? {})) put(safeKey(`${prefix}_${m}`), v);
  return out;
}

/** The task and preprocessing as resolved by the statistics step (defaults filled in), next to the config's params. */
export function dataParams(data: RunData): Record<string, string> {
  const t = data.task;
  const pre = data.preprocessing;
  return flattenParams({
    task: { type: t.type, loss: t.loss, ...(t.loss === 'huber' ? { huberDelta: t.huberDelta } : {}), optimizer: t.optimizer, metrics: t.metrics.join(','), outputs: t.outputs },
    preprocessing: {
      normalization: pre.normalization,
      inputWidth: pre.inputWidth,
      features: pre.features.length,
      targets: pre.targets.map((x) => x.name).join(','),
      ...(pre.imageShape ? { imageShape: pre.imageShape.join('x') } : {}),
    },
    data: { examples: data.n, agents: data.agents.length, refused: data.refused.length },
  });
}

/** An agent name inside a tag key: no '/' (a file-store key is a file name) and nothing MLflow refuses. */
const keyPart = (s: string): string => s.replace(/[^A-Za-z0-9_\-.]/g, '_');

/** Data lineage as tags: fedge.data.fingerprint.<agent> = sha256 of its dataset (agent ids break ties between names). */
export function lineageTags(data: RunData): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of data.agents) {
    let key = `fedge.data.fingerprint.${keyPart(a.name)}`.slice(0, MAX_KEY);
    if (key in out) key = `fedge.data.fingerprint.${keyPart(a.name)}.${keyPart(a.agentId)}`.slice(0, MAX_KEY);
    out[key] = a.fingerprint;
  }
  for (const x of data.refused) out[`fedge.data.refused.${keyPart(x.name)}`.slice(0, MAX_KEY)] = x.reason;
  return out;
}

/** statistics.json, preprocessing.json and lineage.json (which data trained each version) in the run's artifacts. */
async function writeArtifacts(run: RunRecord, dir: string): Promise<void> {
  const data = run.data!;
  const versions = run.rounds.flatMap((r): Record<string, unknown>[] =>
    r.version === undefined
      ? []
      : r.participants
        ? [{ version: r.version, round: r.round, participants: r.participants.filter((p) => p.outcome === 'completed').map((p) => ({ agentId: p.agentId, name: p.name, numExamples: p.numExamples, fingerprint: p.fingerprint })) }]
        // A round too large to list inline: its counts, and where the list is.
        : [{ version: r.version, round: r.round, completed: completedOf(r).completed, datasets: roundSummary(r).datasets ?? 0, ...(r.participantsNote ? { note: r.participantsNote } : {}) }],
  );
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  await writeFile(path.join(dir, 'statistics.json'), json({ n: data.n, statisticsNoiseStd: data.statisticsNoiseStd, columns: data.statistics }));
  await writeFile(path.join(dir, 'preprocessing.json'), json({ task: data.task, preprocessing: data.preprocessing }));
  await writeFile(path.join(dir, 'lineage.json'), json({ preparedAt: data.preparedAt, agents: data.agents, refused: data.refused, versions }));
}
