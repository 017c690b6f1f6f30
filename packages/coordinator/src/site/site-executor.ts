/**
 * An aggregator site's task executor: each training task of the root becomes a one-round sub-run on this
 * coordinator's own agents (its sampling, deadline and stragglers), answered with ONE update: the sub-run's
 * example-weighted mean delta and the total weight, so the root's FedAvg over sites is FedAvg over all their agents.
 */
import { CODECS, ValidationError, type ModelBlob, type ResultHeaderMsg, type TaskMsg, type TensorSpec } from '@fedge/proto';
import { FeedbackStore, TaskExecutor, packUpdate, type LocalData } from '@fedge/edge-agent';
import type { Coordinator, RunView } from '../coordinator.js';
import type { Participant } from '../store/store.js';
import { agentSeedOffset } from '../engine/tasks.js';
import { logger } from '../log.js';
import type { SiteOptions } from './site-options.js';

const log = logger.child({ module: 'site' });

/** Seconds kept from the root task's deadline for the site's upload to the root. */
const UPLOAD_MARGIN_SECONDS = 2;

type RunArgs = Parameters<TaskExecutor['run']>;
type RunResult = Awaited<ReturnType<TaskExecutor['run']>>;

/** A site trains nothing itself: the base executor only fetches and verifies the root's models (never starts a worker). */
function noLocalData(site: string): LocalData {
  const table = { n: 0, columns: [], targets: [], format: 'site', fingerprint: '0'.repeat(64), source: `site ${site}` };
  return { train: table, holdout: table, description: `aggregator site ${site}`, profile: { format: 'site', n: 0, columns: [], targets: [], fingerprint: '0'.repeat(64) } };
}

/** What a root task asks that a site cannot forward to its sub-run yet; undefined when it can run it. */
function unsupported(task: TaskMsg): string | undefined {
  const c = task.config;
  if (task.kind !== 'train' && task.kind !== 'evaluate') return `${task.kind} tasks are not run by sites`;
  if (c.taskJson) return 'runs with a data step (task.*) are not forwarded to sites yet';
  if (c.reportClipped) return 'adaptive clipping is not forwarded to sites yet (central DP with a fixed clipNorm is)';
  if (c.controlVariateSha256) return 'SCAFFOLD is not supported through sites';
  if (c.secaggJson) return 'secure aggregation is not supported through sites';
  return undefined;
}

/**
 * The sub-run's compression block for the agent-to-site leg: the root task's codec (as the root resolved it for this
 * round). Error feedback stays off on this leg: agents key their residual by run, and every root round is a new
 * sub-run here, so a residual would be dropped each round; the site-to-root leg keeps one (the site's own, per root run).
 */
function siteCompression(c: TaskMsg['config']): Record<string, unknown> {
  const codec = c.codec || 'float32';
  if ((CODECS as readonly string[]).includes(codec)) return { codec, ...(c.topkFraction ? { topkFraction: c.topkFraction } : {}), errorFeedback: false };
  return { uplink: codec, errorFeedback: false };
}

/**
 * The completed participants' metrics as one agent's result would carry them, so the root combines sites as it
 * combines agents: eval_* (the base version on the agents' held-out rows) weighted by eval_examples, which adds up,
 * as do sufficient statistics (eval_sse, eval_count, eval_ysum*); anything else weighted by training examples.
 */
export function siteMetrics(done: readonly Participant[]): Record<string, number> {
  const isSum = (k: string): boolean => k === 'eval_examples' || /^eval_(sse|count|ysum|ysumsq)(_\d+)?$/.test(k);
  const sums = new Map<string, { s: number; w: number }>();
  for (const p of done) {
    const m = p.metrics ?? {};
    for (const [k, v] of Object.entries(m)) {
      const w = isSum(k) ? 1 : k.startsWith('eval_') ? (m.eval_examples ?? 0) : (p.numExamples ?? 0);
      if (!Number.isFinite(v) || w <= 0) continue;
      const e = sums.get(k) ?? { s: 0, w: 0 };
      e.s += v * w;
      e.w += w;
      sums.set(k, e);
    }
  }
  return Object.fromEntries([...sums].map(([k, e]) => [k, isSum(k) ? e.s : e.s / e.w]));
}

export class SiteExecutor extends TaskExecutor {
  /** The site-to-root leg's error-feedback residual (compressed uplinks), per root run, in memory. */
  private readonly siteFeedback = new FeedbackStore();

  constructor(private readonly coord: Coordinator, private readonly o: SiteOptions) {
    super(noLocalData(o.name));
  }

  /** Agents online at this site and their examples: what its join and its reports to the root say. */
  counts(): { agents: number; examples: number } {
    const online = this.coord.listAgents().filter((a) => a.status !== 'offline');
    return { agents: online.length, examples: online.reduce((sum, a) => sum + (a.numExamples ?? 0), 0) };
  }

  /** The join's view of this site: its agents' examples, and labels naming the site and its agent count. */
  describe(): { numExamples: number; labels: Record<string, string> } {
    const c = this.counts();
    return { numExamples: c.examples, labels: { 'fedge.site': this.o.name, 'fedge.site-agents': String(c.agents) } };
  }

  /** The evaluate result of an evaluation sub-run: its agents' eval_* metrics combined as the root combines agents'. */
  private async evaluation(task: TaskMsg, s: RunArgs[2], subRun: string, done: RunView): Promise<RunResult> {
    const round = done.rounds[0];
    if (round?.status !== 'completed') throw new Error(`site ${this.o.name}: sub-run ${subRun} ${done.status}: ${round?.reason ?? done.statusMessage ?? 'no agent evaluated the model'}`);
    const all = await this.coord.roundParticipants(subRun, round.round);
    const completed = all.filter((p) => p.outcome === 'completed');
    log.info({ runId: task.runId, round: task.round, subRun, participants: completed.length }, 'site evaluation done: sending the results to the root');
    return {
      header: {
        agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
        kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '',
        metrics: { ...siteMetrics(completed), site_participants: completed.length, site_invited: all.length },
      },
      payload: new Uint8Array(0),
    };
  }

  /**
   * A site runs one root task at a time, so any other sub-run still active is stale (its root task was cancelled, or
   * this coordinator restarted and resumed it): stopped, so that it does not hold the site's agents.
   */
  private async stopStaleSubRuns(task: TaskMsg): Promise<void> {
    for (const r of await this.coord.listRuns()) {
      if (!r.config.upstream || ['completed', 'failed', 'stopped'].includes(r.status)) continue;
      log.warn({ subRun: r.id, root: r.config.upstream.runId, round: r.config.upstream.round, now: `${task.runId} round ${task.round}` }, 'stopping a stale site sub-run');
      await this.coord.stopRun(r.id);
    }
  }

  override async run(...[task, conn, s, signal]: RunArgs): Promise<RunResult> {
    const why = unsupported(task);
    if (why) throw new ValidationError(`site ${this.o.name}: ${why}`);
    const global = await this.verifiedModel(task, conn, s);
    const left = task.deadlineUnixMs > 0 ? (task.deadlineUnixMs - Date.now()) / 1000 - UPLOAD_MARGIN_SECONDS : Infinity;
    const deadline = Math.min(this.o.deadlineSeconds, left);
    if (!(deadline > 0)) throw new ValidationError(`site ${this.o.name}: the root's deadline leaves no time for a round here`);
    await this.stopStaleSubRuns(task);
    const c = task.config;
    // The root's federated evaluation: the sub-run evaluates the root's version on this site's agents.
    const evaluate = task.kind === 'evaluate';
    const initial: ModelBlob = { topology: JSON.parse(global.header.topologyJson) as unknown, tensors: global.header.tensors as TensorSpec[], weights: global.weights.slice() };
    const view = await this.coord.startRun({
      name: `${this.o.name}: ${task.runId} round ${task.round}`,
      rounds: 1,
      epochs: c.epochs,
      batchSize: c.batchSize,
      learningRate: c.learningRate,
      agentsPerRound: { fraction: this.o.fraction, min: this.o.minAgents },
      roundDeadlineSeconds: deadline,
      waitForAgentsSeconds: deadline,
      centralEvaluation: false,
      compression: siteCompression(c),
      // The root seeded this site's task with its round's base plus the site's own name offset: the base is what the
      // site's agents add their offsets to, so each trains with the seed it would get from the root directly.
      upstream: { runId: task.runId, round: task.round, taskId: task.taskId, site: this.o.name, seedBase: c.seed - agentSeedOffset(this.o.name), ...(c.clipNorm ? { clipNorm: c.clipNorm } : {}), ...(c.noiseStd ? { noiseStd: c.noiseStd } : {}), ...(evaluate ? { evaluate } : {}) },
    }, initial);
    const stop = (): void => void this.coord.stopRun(view.id).catch(() => undefined);
    signal.addEventListener('abort', stop, { once: true });
    let done: RunView;
    try {
      done = await this.coord.waitForRun(view.id);
    } finally {
      signal.removeEventListener('abort', stop);
    }
    const round = done.rounds[0];
    if (evaluate) return this.evaluation(task, s, view.id, done);
    if (done.status !== 'completed' || round?.status !== 'completed' || round.version === undefined)
      throw new Error(`site ${this.o.name}: sub-run ${view.id} ${done.status}: ${round?.reason ?? done.statusMessage ?? 'no round completed'}`);
    const after = (await this.coord.runModel(view.id, round.version)).blob.weights;
    const before = global.weights;
    if (after.length !== before.length) throw new Error(`site ${this.o.name}: sub-run ${view.id} changed the model size (${before.length} -> ${after.length} weights)`);
    // The sub-run's mean as its version applied it: v1 = fl(v0 + mean), so v1 - v0 differs from the mean by that one
    // rounding (<= half an ulp of v1); the root then adds the same sum to the same v0 a flat federation would.
    const delta = new Float32Array(before.length);
    for (let i = 0; i < delta.length; i++) delta[i] = after[i]! - before[i]!;
    const all = await this.coord.roundParticipants(view.id, round.round);
    const completed = all.filter((p) => p.outcome === 'completed');
    const numExamples = completed.reduce((sum, p) => sum + (p.numExamples ?? 0), 0);
    // Packed as an agent packs its delta, with the root's task config: central DP's clip (a no-op on a mean of updates
    // each clipped to it, up to rounding; the root checks it), the root's codec and this site's error feedback. Under
    // local DP the agents clipped and noised already: their mean is sent as it is (clipping it again would bias it).
    const ef = c.codec && c.codec !== 'float32' && c.errorFeedback ? this.siteFeedback.get(task.runId, c.efMomentum ?? 0) : undefined;
    const packed = packUpdate(delta, c.noiseStd ? { ...c, clipNorm: 0, noiseStd: 0 } : c, ef);
    const metrics = { ...siteMetrics(completed), ...packed.metrics, site_participants: completed.length, site_invited: all.length };
    log.info({ runId: task.runId, round: task.round, subRun: view.id, participants: completed.length, numExamples, encoding: packed.encoding, bytes: packed.payload.byteLength }, 'site round done: sending the sum to the root');
    const header: ResultHeaderMsg = {
      agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
      kind: 'train', numExamples, tensors: global.header.tensors, totalBytes: packed.payload.byteLength, encoding: packed.encoding, metrics,
    };
    return { header, payload: packed.payload, ...(packed.onAccepted ? { onAccepted: packed.onAccepted } : {}) };
  }
}
