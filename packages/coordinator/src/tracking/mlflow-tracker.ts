/**
 * Live MLflow tracking of one fedge run: params and tags when it starts, each round's metrics as the run record gains
 * them, and at the end its status, final model and ONNX export as artifacts. Nothing here is awaited by the run: calls
 * go through an in-memory queue drained by one worker, retried with exponential backoff while the tracking server is
 * unreachable (one warning per server until it answers again), and bounded: past `maxBufferedMetrics` the oldest
 * metrics are dropped (and counted) so a server that is down for days cannot grow the coordinator's memory.
 */
import type { Logger } from 'pino';
import type { RunRecord } from '../store/store.js';
import { MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE, dataParams, flattenParams, mlflowTags, ms, roundMetricValues, safeKey } from '../cli/tracking-export.js';
import { MLFLOW_LIMITS, MlflowClient, MlflowHttpError, redactUri, type MlflowMetric, type MlflowRunInfo, type MlflowTag } from './mlflow-client.js';

export interface MlflowTarget { uri: string; experiment: string }
export interface Artifact { path: string; bytes: Uint8Array }

export interface MlflowTrackerOptions {
  log: Logger;
  maxBufferedMetrics?: number;
  backoff?: { initialMs: number; maxMs: number };
  timeoutMs?: number;
}

type Op =
  | { kind: 'start'; name: string; startTime: number; params: MlflowTag[]; tags: MlflowTag[] }
  | { kind: 'metrics'; metrics: MlflowMetric[] }
  | { kind: 'tags'; tags: MlflowTag[] }
  | { kind: 'artifacts'; files: () => Promise<Artifact[]> }
  | { kind: 'end'; status: 'FINISHED' | 'FAILED' | 'KILLED'; endTime: number };

/** Servers that have been warned about (until they answer again): one warning per server, not per run or round. */
const warnedServers = new Set<string>();

const STATUS: Partial<Record<RunRecord['status'], 'FINISHED' | 'FAILED' | 'KILLED'>> = { completed: 'FINISHED', failed: 'FAILED', stopped: 'KILLED' };
/** The run's tags; its MLflow name is the config's name (else the fedge id), which runs/create requires to agree. */
const runName = (run: Readonly<RunRecord>): string => run.config.name ?? run.id;
const liveTags = (run: Readonly<RunRecord>): Record<string, string> => ({ ...mlflowTags(run as RunRecord), 'mlflow.runName': runName(run) });
const tagList = (t: Record<string, string>): MlflowTag[] => Object.entries(t).map(([k, v]) => ({ key: safeKey(k).slice(0, MAX_KEY), value: v.slice(0, MAX_TAG_VALUE) }));

export class MlflowTracker {
  private readonly client: MlflowClient;
  /** The server's URL as logs show it (no credentials). */
  private readonly uri: string;
  private readonly ops: Op[] = [];
  /** `${metric}@${step}` -> the value last queued, so an update re-queues only what changed. */
  private readonly queued = new Map<string, number>();
  private run: MlflowRunInfo | undefined;
  /** A new MLflow run's params still to log (a resumed run's were logged when it started), and how many went. */
  private paramsDue = false;
  private paramsSent = 0;
  private warnedRefusal = false;
  private working = false;
  private closed = false;
  private failures = 0;
  private wake: (() => void) | undefined;
  private readonly idle: (() => void)[] = [];
  /** Metrics dropped because the buffer was full, and ops dropped because the server refused them. */
  dropped = { metrics: 0, refused: 0 };
  delivered = 0;

  constructor(readonly target: MlflowTarget, private readonly opts: MlflowTrackerOptions) {
    this.client = new MlflowClient(target.uri, opts.timeoutMs ?? 10_000);
    this.uri = redactUri(target.uri);
  }

  /** The run started (or resumed): its MLflow run is found by its fedge id or created, with params and tags. */
  start(run: Readonly<RunRecord>): void {
    const params = { ...flattenParams(run.config), ...(run.data ? dataParams(run.data) : {}) };
    if (params['tracking.mlflow']) params['tracking.mlflow'] = redactUri(params['tracking.mlflow']);
    this.push({
      kind: 'start',
      name: runName(run),
      startTime: ms(run.startedAt) ?? ms(run.createdAt) ?? Date.now(),
      params: Object.entries(params).map(([k, v]) => ({ key: safeKey(k).slice(0, MAX_KEY), value: v.slice(0, MAX_PARAM_VALUE) })),
      tags: tagList(liveTags(run)),
    });
    this.observe(run, true);
  }

  /**
   * Queues the metrics of rounds whose values are new or changed. Only the last few rounds can change (federated
   * evaluation of a version arrives a round or two later), so an update looks at those; `all` at start and end.
   */
  observe(run: Readonly<RunRecord>, all = false): void {
    const metrics: MlflowMetric[] = [];
    for (const r of all ? run.rounds : run.rounds.slice(-4)) {
      const timestamp = ms(r.endedAt) ?? Date.now();
      for (const [key, value] of Object.entries(roundMetricValues(r))) {
        const id = `${key}@${r.round}`;
        if (this.queued.get(id) === value) continue;
        this.queued.set(id, value);
        metrics.push({ key: key.slice(0, MAX_KEY), value, timestamp, step: r.round });
      }
    }
    if (metrics.length) this.push({ kind: 'metrics', metrics });
  }

  /** The run ended: last metrics, final tags, artifacts (read only when the server takes them), then its status. */
  end(run: Readonly<RunRecord>, artifacts: () => Promise<Artifact[]>): void {
    this.observe(run, true);
    this.push({ kind: 'tags', tags: tagList(liveTags(run)) });
    this.push({ kind: 'artifacts', files: artifacts });
    // A suspended run (still "running") resumes in the next process: its MLflow run stays RUNNING too.
    const status = STATUS[run.status];
    if (status) this.push({ kind: 'end', status, endTime: ms(run.endedAt) ?? Date.now() });
  }

  /** Resolves true once everything queued is delivered (or refused), false after `timeoutMs`. */
  flush(timeoutMs: number): Promise<boolean> {
    if (!this.working && this.ops.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.idle.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Stops retrying; what is still queued is reported, not delivered. */
  close(): void {
    this.closed = true;
    this.wake?.();
    if (this.ops.length) this.opts.log.info({ mlflow: this.uri, pending: this.ops.length, runId: this.run?.run_id }, 'MLflow tracking: closing with updates not delivered');
  }

  private push(op: Op): void {
    if (this.closed) return;
    if (op.kind === 'metrics')
      for (let i = 0; i < op.metrics.length; i += MLFLOW_LIMITS.metricsPerBatch) this.ops.push({ kind: 'metrics', metrics: op.metrics.slice(i, i + MLFLOW_LIMITS.metricsPerBatch) });
    else this.ops.push(op);
    this.bound();
    if (!this.working) void this.work();
  }

  /** Keeps at most maxBufferedMetrics queued metrics, dropping the oldest (start, tags, artifacts and end stay). */
  private bound(): void {
    const max = this.opts.maxBufferedMetrics ?? 10_000;
    let n = this.ops.reduce((a, o) => a + (o.kind === 'metrics' ? o.metrics.length : 0), 0);
    for (const o of this.ops) {
      if (n <= max) break;
      if (o.kind !== 'metrics') continue;
      const cut = Math.min(o.metrics.length, n - max);
      o.metrics.splice(0, cut);
      n -= cut;
      this.dropped.metrics += cut;
    }
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const o = this.ops[i]!;
      if (o.kind === 'metrics' && o.metrics.length === 0) this.ops.splice(i, 1);
    }
  }

  private async work(): Promise<void> {
    this.working = true;
    while (this.ops.length && !this.closed) {
      const op = this.ops[0]!;
      try {
        await this.exec(op);
        this.ops.shift();
        this.delivered++;
        if (this.failures > 0) {
          warnedServers.delete(this.uri);
          this.opts.log.info({ mlflow: this.uri, retries: this.failures, droppedMetrics: this.dropped.metrics }, 'MLflow tracking server answers again; sending what was buffered');
          this.failures = 0;
        }
      } catch (err) {
        const e = err instanceof MlflowHttpError ? err : new MlflowHttpError((err as Error).message, false);
        if (!e.retryable) {
          // The same request would be refused again: drop it. Without an MLflow run (its start refused) nothing
          // else can be logged: the tracker stops, with one warning.
          const dead = !this.run;
          const n = dead ? this.ops.length : 1;
          this.ops.splice(0, n);
          this.dropped.refused += n;
          if (dead) this.closed = true;
          // One warning per run: a server that refuses every log-batch (a permission, a limit) must not warn per round.
          const level = this.warnedRefusal ? 'debug' : 'warn';
          this.warnedRefusal = true;
          this.opts.log[level]({ mlflow: this.uri, op: op.kind, err: e.message, refused: this.dropped.refused }, dead ? 'MLflow tracking: the server refused to start the run; this run is not tracked' : 'MLflow tracking: the server refused an update; dropped it (further refusals are logged at debug level)');
          continue;
        }
        this.failures++;
        if (!warnedServers.has(this.uri)) {
          warnedServers.add(this.uri);
          this.opts.log.warn({ mlflow: this.uri, err: e.message }, `MLflow tracking server unreachable; the run goes on, updates are buffered (up to ${this.opts.maxBufferedMetrics ?? 10_000} metrics) and retried with backoff`);
        } else this.opts.log.debug({ mlflow: this.uri, err: e.message, failures: this.failures }, 'MLflow tracking: retrying');
        const b = this.opts.backoff ?? { initialMs: 1000, maxMs: 30_000 };
        await this.sleep(Math.min(b.maxMs, b.initialMs * 2 ** Math.min(this.failures - 1, 20)));
      }
    }
    this.working = false;
    for (const f of this.idle.splice(0)) f();
  }

  private sleep(msDelay: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, msDelay);
      t.unref();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async exec(op: Op): Promise<void> {
    if (op.kind === 'start') return this.open(op);
    const run = this.run!;
    switch (op.kind) {
      case 'metrics': {
        // Consecutive metric ops (each within the batch limit, see push) go out together, up to that limit.
        let n = 1;
        let size = op.metrics.length;
        while (this.ops[n]?.kind === 'metrics' && size + (this.ops[n] as { metrics: MlflowMetric[] }).metrics.length <= MLFLOW_LIMITS.metricsPerBatch)
          size += (this.ops[n++] as { metrics: MlflowMetric[] }).metrics.length;
        const merged = this.ops.slice(0, n).flatMap((o) => (o.kind === 'metrics' ? o.metrics : []));
        await this.client.logBatch(run.run_id, { metrics: merged });
        this.ops.splice(1, n - 1); // the caller shifts the first
        return;
      }
      case 'tags':
        for (let i = 0; i < op.tags.length; i += MLFLOW_LIMITS.tagsPerBatch) await this.client.logBatch(run.run_id, { tags: op.tags.slice(i, i + MLFLOW_LIMITS.tagsPerBatch) });
        return;
      case 'artifacts':
        for (const f of await op.files()) await this.client.putArtifact(run.artifact_uri, f.path, f.bytes);
        return;
      case 'end':
        return this.client.updateRun(run.run_id, op.status, op.endTime);
    }
  }

  /** Finds the fedge run's MLflow run (a resumed run keeps logging to it) or creates it, then logs params and tags. */
  private async open(op: Extract<Op, { kind: 'start' }>): Promise<void> {
    if (!this.run) {
      const experimentId = await this.client.experimentId(this.target.experiment);
      const fedgeId = op.tags.find((t) => t.key === 'fedge.run_id')?.value ?? op.name;
      const existing = await this.client.findRunByTag(experimentId, 'fedge.run_id', fedgeId);
      // Params are immutable in MLflow: a resumed run's were logged when it started.
      this.paramsDue = !existing;
      this.run = existing ?? (await this.client.createRun(experimentId, op.name, op.startTime, op.tags.slice(0, MLFLOW_LIMITS.tagsPerBatch)));
      // A resumed run was ended (KILLED) when the previous coordinator stopped: it runs again.
      if (existing) await this.client.updateRun(existing.run_id, 'RUNNING');
      this.opts.log.info({ mlflow: this.uri, experiment: this.target.experiment, experimentId, mlflowRunId: this.run.run_id, resumed: !!existing }, 'MLflow tracking: logging this run');
    }
    // A retry after a partial failure continues here: the run exists, the params may not all be logged yet.
    while (this.paramsDue && this.paramsSent < op.params.length) {
      await this.client.logBatch(this.run.run_id, { params: op.params.slice(this.paramsSent, this.paramsSent + MLFLOW_LIMITS.paramsPerBatch) });
      this.paramsSent += MLFLOW_LIMITS.paramsPerBatch;
    }
    for (let i = 0; i < op.tags.length; i += MLFLOW_LIMITS.tagsPerBatch) await this.client.logBatch(this.run.run_id, { tags: op.tags.slice(i, i + MLFLOW_LIMITS.tagsPerBatch) });
  }
}
