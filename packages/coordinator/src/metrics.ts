/**
 * Prometheus metrics of the coordinator (`fedge serve --metrics HOST:PORT`), in the text exposition format via
 * prom-client. Values are derived from the run records at every scrape, so they agree with `fedge run show`
 * and survive a coordinator restart with a durable store (counters count over all runs the store holds).
 */
import { createServer, type Server } from 'node:http';
import { answerHealth, listenOn, psiBand, type Readiness } from '@fedge/proto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Coordinator, RunView } from './coordinator.js';
import type { AgentRecord, RunRecord } from './store/store.js';
import { worstPsi } from './engine/drift-book.js';
import { LATENCY_BUCKETS, roundSummary } from './store/round-summary.js';

export const DEFAULT_METRICS_PORT = 9464;

export { reasonCode } from './store/round-summary.js';

/** Metric names as label values: the task metrics and loss; anything else a record might hold is not exposed (bounded labels). */
const METRIC_LABEL = /^[a-z][a-z0-9_]{0,31}$/;

/**
 * The task metrics of the latest version evaluated from `source` (versions first, then round records, which
 * carry the same values under the version they produced), or undefined when no version has any.
 */
export function latestTaskMetrics(r: Pick<RunRecord, 'versions' | 'rounds'>, source: 'central' | 'federated'): Record<string, number> | undefined {
  const key = source === 'central' ? 'centralMetrics' : 'federatedMetrics';
  let best: { version: number; metrics: Record<string, number> } | undefined;
  const consider = (version: number | undefined, metrics: Record<string, number> | undefined): void => {
    if (version === undefined || !metrics || Object.keys(metrics).length === 0) return;
    if (!best || version > best.version) best = { version, metrics };
  };
  for (const v of r.versions) consider(v.version, v[key]);
  for (const rec of r.rounds) consider(rec.version, rec[key]);
  return best?.metrics;
}

/** prom-client default metrics that are gauges with a counter's _total suffix (their per-type gauges stay). */
export const UNLINTED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export interface CoordinatorMetrics {
  registry: Registry;
  /** Refreshes every metric from `runs` and `agents` (called before each scrape; the registry's live records, read once). */
  update(runs: RunView[], agents: Iterable<Readonly<AgentRecord>>): void;
}

export function createCoordinatorMetrics(opts: { defaultMetrics?: boolean } = {}): CoordinatorMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: 'fedge_coordinator_' });
    // prom-client also exports each of these per-type gauges' sum as a gauge named *_total, which Prometheus
    // reserves for counters (promtool check metrics flags it). The sum is sum(fedge_coordinator_nodejs_active_handles).
    for (const name of UNLINTED_DEFAULT_METRICS) registry.removeSingleMetric(`fedge_coordinator_${name}`);
  }
  const runs = new Gauge({ name: 'fedge_runs', help: 'Runs by status', labelNames: ['status'], registers });
  const agents = new Gauge({ name: 'fedge_agents', help: 'Known agents by status', labelNames: ['status'], registers });
  const driftAgents = new Gauge({ name: 'fedge_fleet_drift_agents', help: 'Online serving agents by the band of the worst PSI in their last drift report (stable < 0.1, moderate, significant > 0.25)', labelNames: ['band'], registers });
  const round = new Gauge({ name: 'fedge_run_round', help: 'Last completed round (sync) or aggregation step (async) of a run', labelNames: ['run_id'], registers });
  const version = new Gauge({ name: 'fedge_model_version', help: 'Latest global model version of a run', labelNames: ['run_id'], registers });
  const rounds = new Counter({ name: 'fedge_rounds_total', help: 'Rounds ended, by status (completed: produced a version)', labelNames: ['run_id', 'status'], registers });
  const versions = new Counter({ name: 'fedge_model_versions_total', help: 'Global model versions registered (version 0 included)', labelNames: ['run_id'], registers });
  const participants = new Counter({ name: 'fedge_round_participants_total', help: 'Agents invited to rounds, by outcome', labelNames: ['run_id', 'outcome'], registers });
  const rejected = new Counter({ name: 'fedge_rejected_updates_total', help: 'Updates rejected, by reason', labelNames: ['run_id', 'reason'], registers });
  const bytesSent = new Counter({ name: 'fedge_bytes_sent_total', help: 'Model bytes sent to agents', labelNames: ['run_id'], registers });
  const bytesReceived = new Counter({ name: 'fedge_bytes_received_total', help: 'Update bytes received from agents', labelNames: ['run_id'], registers });
  // The same traffic as dense float32 (compression.uplink / downlink): the ratio is fedge_bytes_*_total over these.
  const bytesSentDense = new Counter({ name: 'fedge_bytes_sent_float32_total', help: 'What the model downloads would weigh as full float32 models', labelNames: ['run_id'], registers });
  const bytesReceivedDense = new Counter({ name: 'fedge_bytes_received_float32_total', help: 'What the accepted updates would weigh as dense float32', labelNames: ['run_id'], registers });
  const aggregation = new Histogram({
    name: 'fedge_aggregation_seconds', help: 'Time to aggregate a round', labelNames: ['run_id'], registers,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const updates = new Histogram({
    name: 'fedge_update_seconds', help: 'Task latency of accepted updates (task sent to update received)', labelNames: ['run_id'], registers,
    buckets: [...LATENCY_BUCKETS],
  });
  const central = new Gauge({ name: 'fedge_central_accuracy', help: 'Central accuracy of the latest evaluated version', labelNames: ['run_id'], registers });
  const federated = new Gauge({ name: 'fedge_federated_accuracy', help: 'Federated accuracy of the latest version agents evaluated', labelNames: ['run_id'], registers });
  const taskMetric = new Gauge({
    name: 'fedge_run_metric',
    help: 'Task metric (loss, accuracy, f1, auc, rmse, mae, r2, ...) of the latest version evaluated; source central: the coordinator\'s evaluation data, federated: the agents\' held-out splits',
    labelNames: ['run_id', 'metric', 'source'], registers,
  });
  const epsilon = new Gauge({ name: 'fedge_epsilon', help: 'Differential privacy: epsilon spent so far (at the run\'s delta)', labelNames: ['run_id'], registers });
  // The alert rules compare against these (deploy/k3s/fedge/alerts): budget used, and a new version vs the promoted one.
  const epsilonMax = new Gauge({ name: 'fedge_epsilon_max', help: 'Differential privacy: the run\'s budget, privacy.maxEpsilon (runs that set one)', labelNames: ['run_id'], registers });
  const promoted = new Gauge({ name: 'fedge_promoted_model_version', help: 'Version serving agents are promoted to (fedge model promote); absent before the first promotion', labelNames: ['run_id'], registers });
  const promotedCentral = new Gauge({ name: 'fedge_promoted_central_accuracy', help: 'Central accuracy of the promoted version (compare with fedge_central_accuracy of the latest)', labelNames: ['run_id'], registers });

  // Self-healing canaries and the run's promotion gate; label `run` (not run_id): the alert rules are written on these names.
  const canaryActive = new Gauge({ name: 'fedge_canary_active', help: 'A canary rollout is in progress for this run and version (1)', labelNames: ['run', 'version'], registers });
  const canaryRollbacks = new Counter({ name: 'fedge_canary_rollbacks_total', help: 'Self-healing canaries rolled back because a health threshold was crossed', labelNames: ['run'], registers });
  const gateFailed = new Gauge({ name: 'fedge_promotion_gate_failed', help: 'The run\'s promotion gate (config promotion.minMetric) failed at its end (1) or passed (0)', labelNames: ['run'], registers });
  // Every figure is rebuilt from the run and agent lists on each scrape.
  const all = [runs, agents, round, version, rounds, versions, participants, rejected, bytesSent, bytesReceived, bytesSentDense, bytesReceivedDense, aggregation, updates, central, federated, taskMetric, epsilon, epsilonMax, promoted, promotedCentral, canaryActive, canaryRollbacks, gateFailed];

  return {
    registry,
    update(runList, agentList) {
      for (const m of all) m.reset();
      const byStatus = new Map<string, number>();
      for (const s of ['pending', 'waiting', 'running', 'completed', 'failed', 'stopped']) byStatus.set(s, 0);
      for (const r of runList) {
        byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
        const run_id = r.id;
        promotionFigures(r, canaryActive, canaryRollbacks, gateFailed);
        round.set({ run_id }, r.round);
        version.set({ run_id }, r.modelVersion);
        versions.inc({ run_id }, r.versions.length);
        let sent = 0;
        let received = 0;
        let sentDense = 0;
        let receivedDense = 0;
        let lastCentral = r.versions.find((v) => v.version === 0)?.centralAccuracy;
        let lastFederated: number | undefined;
        let lastEpsilon: number | undefined;
        for (const rec of r.rounds) {
          rounds.inc({ run_id, status: rec.status });
          sent += rec.bytesSent;
          received += rec.bytesReceived;
          sentDense += rec.bytesSentDense ?? rec.bytesSent;
          receivedDense += rec.bytesReceivedDense ?? rec.bytesReceived;
          if (rec.aggregationMs !== undefined) aggregation.observe({ run_id }, rec.aggregationMs / 1000);
          const s = roundSummary(rec);
          for (const [outcome, n] of Object.entries(s.outcomes)) if (n) participants.inc({ run_id, outcome }, n);
          for (const [reason, n] of Object.entries(s.rejected ?? {})) rejected.inc({ run_id, reason }, n);
          // Each bucket's mean lies in the bucket, so observing it `count` times gives exact bucket counts and sum.
          for (const b of s.latency ?? []) for (let i = 0; i < b.count; i++) updates.observe({ run_id }, b.sum / b.count);
          if (Number.isFinite(rec.centralAccuracy)) lastCentral = rec.centralAccuracy;
          if (Number.isFinite(rec.federatedAccuracy)) lastFederated = rec.federatedAccuracy;
          if (Number.isFinite(rec.epsilon)) lastEpsilon = rec.epsilon;
        }
        bytesSent.inc({ run_id }, sent);
        bytesReceived.inc({ run_id }, received);
        bytesSentDense.inc({ run_id }, sentDense);
        bytesReceivedDense.inc({ run_id }, receivedDense);
        if (lastCentral !== undefined && Number.isFinite(lastCentral)) central.set({ run_id }, lastCentral);
        if (lastFederated !== undefined) federated.set({ run_id }, lastFederated);
        if (lastEpsilon !== undefined) epsilon.set({ run_id }, lastEpsilon);
        const maxEpsilon = r.config.privacy?.maxEpsilon;
        if (maxEpsilon !== undefined) epsilonMax.set({ run_id }, maxEpsilon);
        const p = r.promotion?.version;
        if (p !== undefined) {
          promoted.set({ run_id }, p);
          const acc = r.versions.find((v) => v.version === p)?.centralAccuracy ?? r.rounds.find((x) => x.version === p)?.centralAccuracy;
          if (acc !== undefined && Number.isFinite(acc)) promotedCentral.set({ run_id }, acc);
        }
        for (const source of ['central', 'federated'] as const)
          for (const [metric, v] of Object.entries(latestTaskMetrics(r, source) ?? {}))
            if (METRIC_LABEL.test(metric) && Number.isFinite(v)) taskMetric.set({ run_id, metric, source }, v);
      }
      for (const [status, n] of byStatus) runs.set({ status }, n);
      const bands: Record<string, number> = { stable: 0, moderate: 0, significant: 0 };
      let online = 0;
      let known = 0;
      for (const a of agentList) {
        known++;
        if (a.status !== 'online') continue;
        online++;
        if (a.drift) bands[psiBand(worstPsi(a.drift))]!++;
      }
      agents.set({ status: 'online' }, online);
      agents.set({ status: 'offline' }, known - online);
      for (const [band, n] of Object.entries(bands)) driftAgents.set({ band }, n);
    },
  };
}

/**
 * Whether the coordinator can do its job. `fedge serve` opens the metrics listener only once the store is open and
 * gRPC (and MQTT) listen, and closes them only after `stopping` is set; what can still go wrong in between is the
 * data directory: after a failed write new runs and uploads are refused until a restart.
 */
export function coordinatorReadiness(coord: Pick<Coordinator, 'storageError'>, s: { stopping?: boolean }): Readiness {
  if (s.stopping) return { ready: false, reason: 'shutting down' };
  const fault = coord.storageError;
  if (fault) return { ready: false, reason: `data directory failed a write: ${fault.message}` };
  return { ready: true };
}

export interface MetricsServer {
  /** HOST:PORT actually listened on. */
  address: string;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics for `coord` on host:port (port 0: any free port), and the probes GET /healthz (the process
 * answers) and GET /readyz (`readiness`; without one: ready unless the data directory failed a write).
 */
export async function startMetricsServer(coord: Coordinator, listen: { host: string; port: number }, readiness?: () => Readiness): Promise<MetricsServer> {
  const metrics = createCoordinatorMetrics();
  const ready = readiness ?? ((): Readiness => coordinatorReadiness(coord, {}));
  const server: Server = createServer((req, res) => {
    if (answerHealth(req, res, ready)) return;
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || url !== '/metrics') {
      res.writeHead(url === '/metrics' ? 405 : 404, { 'content-type': 'text/plain' }).end(url === '/metrics' ? 'method not allowed\n' : 'not found; metrics are at /metrics, probes at /healthz and /readyz\n');
      return;
    }
    void (async () => {
      try {
        // Counted on the live records: a scrape every few seconds need not copy 10,000 of them (listAgents did).
        metrics.update(await coord.listRuns(), coord.registry.records());
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
      }
    })();
  });
  return {
    address: await listenOn(server, listen.host, listen.port),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The canary and promotion-gate figures of one run (fedge_canary_*, fedge_promotion_gate_failed), from its record. */
function promotionFigures(r: RunRecord, active: Gauge, rollbacks: Counter, gate: Gauge): void {
  const p = r.promotion;
  if (p?.canary) active.set({ run: r.id, version: String(p.canary.version) }, 1);
  const n = p?.history.filter((h) => h.action === 'rollback' && h.auto).length ?? 0;
  if (p) rollbacks.inc({ run: r.id }, n);
  if (r.promotionGate) gate.set({ run: r.id }, r.promotionGate.passed ? 0 : 1);
}
