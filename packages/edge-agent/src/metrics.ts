/**
 * `fedge-agent --metrics HOST:PORT`: Prometheus text exposition of what the agent does, served at GET /metrics.
 *
 * Counted by wrapping the agent's CoordinatorConnection (joins, the task stream, model fetches, result submissions),
 * so the agent itself needs no changes; the served model version is read from the model slot at scrape time.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerHealth, listenOn, type Readiness, type ResultHeaderMsg } from '@fedge/proto';
import { overrideConnection, tapTaskStream, type CoordinatorConnection } from './transport/connection.js';
import { escapeLabel } from './prom-text.js';

const TRAIN_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

const labels = (l: Record<string, string>): string => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
};
const fmt = (n: number): string => (Number.isNaN(n) ? 'NaN' : n === Infinity ? '+Inf' : n === -Infinity ? '-Inf' : String(n));

export class AgentMetrics {
  readonly tasksReceived = new Map<string, number>();
  readonly tasksCompleted = new Map<string, number>();
  readonly tasksFailed = new Map<string, number>();
  private readonly trainBuckets = TRAIN_BUCKETS.map(() => 0);
  private trainCount = 0;
  private trainSum = 0;
  samplesPerSecond: number | undefined;
  lastTrainLoss: number | undefined;
  lastTrainAccuracy: number | undefined;
  bytesUp = 0;
  bytesDown = 0;
  joins = 0;
  /** Per-version serving figures (with --serve): fedge_serving_* by the version that answered. */
  serving: { render(): string[] } | undefined;
  /** Data drift gauges (with --serve and --drift-window): fedge_agent_drift_*. */
  drift: { render(): string[] } | undefined;
  /** The served model version (with --serve), read at scrape time. */
  servedVersion: (() => { version: string; run?: string } | undefined) | undefined;

  constructor(readonly info: { backend: string; name: string; version: string }) {}

  get reconnects(): number {
    return Math.max(0, this.joins - 1);
  }

  private static inc(m: Map<string, number>, kind: string): void {
    m.set(kind, (m.get(kind) ?? 0) + 1);
  }

  taskReceived(kind: string): void {
    AgentMetrics.inc(this.tasksReceived, kind);
  }

  /** A result the coordinator accepted (completed) or rejected / could not take (failed). */
  resultSubmitted(h: Pick<ResultHeaderMsg, 'kind' | 'metrics'>, accepted: boolean): void {
    AgentMetrics.inc(accepted ? this.tasksCompleted : this.tasksFailed, h.kind);
    const m = h.metrics;
    if (h.kind !== 'train') return;
    if (m.train_seconds !== undefined) this.observeTraining(m.train_seconds);
    if (m.samples_per_sec !== undefined) this.samplesPerSecond = m.samples_per_sec;
    if (m.train_loss !== undefined) this.lastTrainLoss = m.train_loss;
    if (m.train_accuracy !== undefined) this.lastTrainAccuracy = m.train_accuracy;
  }

  taskFailed(kind: string): void {
    AgentMetrics.inc(this.tasksFailed, kind);
  }

  observeTraining(seconds: number): void {
    this.trainCount++;
    this.trainSum += seconds;
    TRAIN_BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.trainBuckets[i]!++;
    });
  }

  /** The text exposition format (version 0.0.4). */
  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [Record<string, string>, number][]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [l, v] of samples) out.push(`${name}${labels(l)} ${fmt(v)}`);
    };
    const byKind = (m: Map<string, number>): [Record<string, string>, number][] =>
      [...new Set(['train', 'evaluate', ...m.keys()])].map((k) => [{ kind: k }, m.get(k) ?? 0]);
    metric('fedge_agent_info', 'gauge', 'Agent build and runtime information.', [[{ backend: this.info.backend, name: this.info.name, version: this.info.version }, 1]]);
    metric('fedge_agent_tasks_received_total', 'counter', 'Tasks received from the coordinator, by kind.', byKind(this.tasksReceived));
    metric('fedge_agent_tasks_completed_total', 'counter', 'Results the coordinator accepted, by kind.', byKind(this.tasksCompleted));
    metric('fedge_agent_tasks_failed_total', 'counter', 'Results the coordinator rejected or that could not be submitted, by kind.', byKind(this.tasksFailed));
    out.push('# HELP fedge_agent_training_seconds Local training time per training task.', '# TYPE fedge_agent_training_seconds histogram');
    TRAIN_BUCKETS.forEach((b, i) => out.push(`fedge_agent_training_seconds_bucket{le="${fmt(b)}"} ${this.trainBuckets[i]}`));
    out.push(`fedge_agent_training_seconds_bucket{le="+Inf"} ${this.trainCount}`, `fedge_agent_training_seconds_sum ${fmt(this.trainSum)}`, `fedge_agent_training_seconds_count ${this.trainCount}`);
    const gauge = (name: string, help: string, v: number | undefined): void => {
      if (v !== undefined) metric(name, 'gauge', help, [[{}, v]]);
    };
    gauge('fedge_agent_samples_per_second', 'Training throughput of the last training task (examples per second).', this.samplesPerSecond);
    gauge('fedge_agent_last_train_loss', 'Training loss of the last training task.', this.lastTrainLoss);
    gauge('fedge_agent_last_train_accuracy', 'Training accuracy of the last training task.', this.lastTrainAccuracy);
    metric('fedge_agent_bytes_sent_total', 'counter', 'Result payload bytes sent to the coordinator.', [[{}, this.bytesUp]]);
    metric('fedge_agent_bytes_received_total', 'counter', 'Model bytes received from the coordinator.', [[{}, this.bytesDown]]);
    metric('fedge_agent_reconnects_total', 'counter', 'Joins after the first one (reconnections to the coordinator).', [[{}, this.reconnects]]);
    const served = this.servedVersion?.();
    if (this.servedVersion) {
      const v = served ? Number(served.version) : NaN;
      metric('fedge_agent_served_model_version', 'gauge', 'Global model version being served (--serve); NaN before the first.', [[served?.run ? { run_id: served.run } : {}, v]]);
    }
    if (this.serving) out.push(...this.serving.render());
    if (this.drift) out.push(...this.drift.render());
    return `${out.join('\n')}\n`;
  }

  /** Wraps a connection so everything going through it is counted. */
  instrument(conn: CoordinatorConnection): CoordinatorConnection {
    return overrideConnection(conn, {
      join: async (req) => {
        const reply = await conn.join(req);
        this.joins++;
        return reply;
      },
      tasks: (agentId, sessionToken) =>
        tapTaskStream(conn.tasks(agentId, sessionToken), {
          task: (t) => {
            if (t.kind === 'train' || t.kind === 'evaluate') this.taskReceived(t.kind);
          },
        }),
      fetchModel: async (req) => {
        const r = await conn.fetchModel(req);
        this.bytesDown += r.bytes.byteLength;
        return r;
      },
      submit: async (header, payload) => {
        try {
          const reply = await conn.submit(header, payload);
          this.bytesUp += payload.byteLength;
          this.resultSubmitted(header, reply.accepted);
          return reply;
        } catch (err) {
          this.taskFailed(header.kind);
          throw err;
        }
      },
      // challenge, secagg, report and close pass through uncounted: SecAgg stage messages are small (keys, share
      // boxes); the masked input, the large part, is counted by submit.
    });
  }
}

/** Serves GET /metrics, and the probes GET /healthz and /readyz (health.ts), on host:port; resolves with the bound address. */
export async function startMetricsServer(metrics: AgentMetrics, host: string, port: number, readiness: () => Readiness = () => ({ ready: true })): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    if (answerHealth(req, res, readiness)) return;
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(metrics.render());
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: GET /metrics, /healthz or /readyz\n');
  });
  await listenOn(server, host, port);
  return { server, address: server.address() as AddressInfo };
}
