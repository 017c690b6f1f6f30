/** Each version's metrics against the run's stop rule: federated evaluation per version, stopAt (or targetAccuracy) on it or on the central one. */
import { stopRule } from '../config/task-config.js';
import type { Logger } from '../log.js';
import type { RunContext } from './run-context.js';
import { LEGACY_METRIC_TASK, combineMetrics, stripPrefix, type MetricPart, type MetricTask } from './task-metrics.js';

export class VersionMetrics {
  readonly stopAt: ReturnType<typeof stopRule>;
  targetHit = false;
  /** Federated evaluation per version: each agent's example count and metrics (eval_ prefix removed). */
  private readonly evalParts = new Map<number, MetricPart[]>();
  /** The task's metric names and how they combine (legacy runs: accuracy of 10-class classification). */
  readonly task: MetricTask;
  private readonly metricNames: readonly string[];

  constructor(
    private readonly ctx: RunContext,
    /** A central evaluation judges versions: the federated one never ends the run then. */
    private readonly centralJudges: boolean,
    private readonly log: Logger,
    /** The run may end early (target reached). */
    private readonly onHit: () => void,
  ) {
    const run = ctx.run;
    this.task = run.data?.task ?? LEGACY_METRIC_TASK;
    this.metricNames = this.task.metrics;
    this.stopAt = stopRule(run.config);
  }

  /** The task's metrics (and loss) out of an evaluation's, dropping sufficient statistics. */
  pick(m: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of ['loss', ...this.metricNames]) if (m[k] !== undefined && Number.isFinite(m[k])) out[k] = m[k];
    return out;
  }

  /** stopAt (or targetAccuracy): ends the run once a version's metric reaches the value, from the side the metric implies. */
  checkTarget(version: number, round: number, metrics: Record<string, number>): void {
    const rule = this.stopAt;
    const value = rule ? metrics[rule.metric] : undefined;
    if (!rule || this.targetHit || value === undefined || !Number.isFinite(value)) return;
    if (rule.lowerIsBetter ? value > rule.value : value < rule.value) return;
    this.targetHit = true;
    const run = this.ctx.run;
    const started = run.startedAt ? Date.parse(run.startedAt) : Date.now();
    this.ctx.reachTarget({ version, round, accuracy: metrics.accuracy ?? Number.NaN, seconds: (Date.now() - started) / 1000, metric: rule.metric, value });
    this.log.info({ version, metric: rule.metric, value, target: rule.value }, 'stop target reached');
    this.onHit();
  }

  /**
   * Agents evaluate the model they received before training: those metrics belong to the version they trained
   * from, so they are accumulated per version and shown on the round that produced it.
   */
  noteEval(version: number, m: Record<string, number>): void {
    const n = m.eval_examples ?? 0;
    if (!(n > 0) || m.eval_loss === undefined) return;
    const parts = this.evalParts.get(version) ?? [];
    parts.push({ n, metrics: stripPrefix(m, 'eval_') });
    this.evalParts.set(version, parts);
    const combined = combineMetrics(parts, this.task);
    const examples = parts.reduce((s, p) => s + p.n, 0);
    this.ctx.setFederated(version, combined, examples);
    // A sync version is judged once the round that trained from it has closed (checkFederatedTarget), on every agent's
    // held-out rows: checked here, the first agents' share alone could end the run with a value the version's own
    // record contradicts. Async has no point at which a version's evaluation is complete, so it judges what has come in.
    if (this.ctx.run.config.mode === 'async') this.checkFederatedTarget(version);
  }

  /** stopAt on the federated evaluation of `version` as far as it has come in, unless a central evaluation judges versions. */
  checkFederatedTarget(version: number): void {
    if (this.centralJudges) return;
    const parts = this.evalParts.get(version);
    if (!parts?.length) return;
    const round = this.ctx.run.rounds.find((x) => x.version === version)?.round ?? 0;
    this.checkTarget(version, round, combineMetrics(parts, this.task));
  }
}
