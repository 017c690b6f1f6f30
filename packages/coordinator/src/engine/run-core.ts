/** What both round drivers share: the run's versions, records, metrics, stop rules and live view (one instance per run). */
import { createRng, totalParams, type ModelBlob, type SignedModelRef, type StorageError, type TensorSpec } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import { moduleLogger, type Logger } from '../log.js';
import type { AgentRecord, RoundRecord, RunRecord, Store } from '../store/store.js';
import { StreamingFedAvg } from '../strategy/aggregate.js';
import { summarizeFailures, weightedMetric } from '../strategy/fedavg.js';
import { stalenessHistogram } from '../strategy/staleness.js';
import type { AggregateView, Strategy } from '../strategy/strategy.js';
import type { AgentRegistry } from './agent-registry.js';
import { makeGlobalModel, type GlobalModel } from './global-model.js';
import { DownlinkDeltas } from './downlink.js';
import type { OpenRound, Invitee } from './round.js';
import type { RunContext } from './run-context.js';
import { combineMetrics, stripPrefix } from './task-metrics.js';
import { TaskFactory } from './tasks.js';
import { VersionMetrics } from './version-metrics.js';
import type { UpdateSpool } from './update-spool.js';
import { RunSpools } from './run-spools.js';
import { storageError } from '../store/storage-error.js';

/** How stale the live view (participants of the open round) may get while results pour in. */
const LIVE_REFRESH_MS = 50;

export interface RunEngineDeps {
  store: Store;
  registry: AgentRegistry;
  strategy: Strategy;
  /** Signs (run, version, sha256) for every task that names a model, so agents can check the coordinator made it. */
  signModel?: (ref: SignedModelRef) => Uint8Array;
  /** Central evaluation of a global model on a test set the coordinator holds (optional); metrics are the task's. */
  evaluateCentral?: (blob: ModelBlob) => Promise<{ loss: number; accuracy: number; metrics?: Record<string, number> }>;
  /** Persists the final model for users; returns the path. */
  saveFinalModel?: (run: RunRecord, blob: ModelBlob) => Promise<string>;
  /**
   * With a durable store: accepted sync updates are written here before they are acknowledged and folded at the
   * end of the round in agent-name order, so a round survives a crash and the model does not depend on arrival order.
   */
  spool?: UpdateSpool;
  /**
   * Where a run that is not durable keeps a round's updates when its strategy aggregates every update (robust
   * aggregators): a per-run directory under it, each round's files removed once the round is folded. Default: the OS
   * temp directory.
   */
  scratchDir?: string;
  /** Agents this run may invite (those whose data fits the run's schema); default every agent. */
  eligible?: (a: AgentRecord) => boolean;
  /**
   * A write of the data directory failed (no space, read-only, I/O error): the coordinator stops taking work and
   * suspends its runs (this one included), which stay resumable.
   */
  onStorageFault?: (err: StorageError) => void;
  /** After each finished round's record is saved: model retention (engine/retention.ts) frees old versions' weights. */
  afterVersion?: (ctx: RunContext) => Promise<void>;
}

export interface LiveView {
  phase: 'waiting' | 'training' | 'aggregating' | 'evaluating' | 'done';
  round: number;
  deadline?: number;
  participants: { agentId: string; name: string; state: string }[];
  /** Async mode: updates in the buffer and tasks in flight. */
  buffered?: number;
  inFlight?: number;
}

/** What differs between the drivers but the shared code needs, fixed when the engine is built. */
export interface DriverTraits {
  /** Versions kept in memory for agents still downloading or training on them. */
  keepVersions: number;
  /** What a record is called in messages and logs. */
  unit: 'rounds' | 'aggregation steps';
  published: 'round ended' | 'version published';
  /** Sync rounds show an "evaluating" phase while a new version is evaluated centrally. */
  showEvaluating: boolean;
}

export class RunCore {
  readonly log: Logger;
  readonly specs: TensorSpec[];
  /** Run-wide sampling (async dispatch, final evaluation); sync rounds seed their own per round. */
  readonly rng: () => number;
  /** Two staging slots bound memory to (1 accumulator + 2 updates) whatever the number of agents. */
  readonly agg: StreamingFedAvg;
  readonly tasks: TaskFactory;
  readonly stopCtl = new AbortController();
  private global!: GlobalModel;
  private readonly versions = new Map<number, GlobalModel>();
  private downlinkState: DownlinkDeltas | null | undefined;
  /** The open round (sync, and the final evaluation) or the buffer being filled (async). */
  current: OpenRound | undefined;
  /** Sync: tasks of closed rounds whose results may still be folded into the next round. Async: tasks in flight. */
  readonly outstanding = new Map<string, Invitee>();
  /** Federated evaluation per version and the stop rule judged on it or on the central evaluation. */
  readonly metrics: VersionMetrics;
  /** The round's spooled updates: folded back from the durable spool, or kept for a strategy that aggregates them all. */
  readonly spools: RunSpools;
  /** Why the run ended early on its privacy budget (config.privacy.maxEpsilon). */
  privacyStop: string | undefined;
  live: LiveView = { phase: 'waiting', round: 0, participants: [] };
  /** Set by the async driver: wakes its loop when the run may end early (target reached, stopped). */
  wake: () => void = () => undefined;
  /** Set by the async driver: its live view (buffer and tasks in flight) while it has a buffer open. */
  liveOverride: (() => LiveView | undefined) | undefined;
  traits!: DriverTraits;
  /** The strategy's saved state restored (a resumed run's server optimizer moments are read from the store first). */
  readonly attached: Promise<void>;

  constructor(
    readonly ctx: RunContext,
    initial: ModelBlob,
    readonly deps: RunEngineDeps,
    private readonly emitUpdate: () => void,
  ) {
    const run = ctx.run;
    this.attached = ctx.attachStrategy(deps.strategy);
    // Awaited when the run executes; a failure is reported there, not as an unhandled rejection.
    this.attached.catch(() => undefined);
    this.tasks = new TaskFactory(run, {
      ...(deps.signModel ? { signModel: deps.signModel } : {}),
      ...(deps.strategy.taskConfig ? { trainExtras: () => deps.strategy.taskConfig!() } : {}),
    });
    this.log = moduleLogger('run').child({ runId: run.id });
    this.specs = initial.tensors;
    this.global = makeGlobalModel(run.id, run.modelVersion, initial);
    this.versions.set(this.global.version, this.global);
    const numParams = totalParams(initial.tensors);
    // SCAFFOLD: every update is [delta | control-variate delta], so slots and the mean hold two model sizes.
    deps.strategy.controlVariates?.init(numParams);
    this.agg = StreamingFedAvg.create(numParams * (deps.strategy.controlVariates ? 2 : 1), { slots: 2 });
    this.rng = createRng(run.config.seed);
    this.metrics = new VersionMetrics(ctx, !!(run.config.centralEvaluation && deps.evaluateCentral), this.log, () => this.wake());
    // Sync rounds keep every accepted update when the strategy aggregates them itself (robust aggregators).
    const keepsUpdates = deps.strategy.aggregateUpdates !== undefined && run.config.mode === 'sync';
    this.spools = new RunSpools(run.id, this.agg, numParams, keepsUpdates, deps);
  }

  get run(): Readonly<RunRecord> {
    return this.ctx.run;
  }

  get config(): RunConfig {
    return this.ctx.run.config;
  }

  get strategy(): Strategy {
    return this.deps.strategy;
  }

  get globalModel(): GlobalModel {
    return this.global;
  }

  modelVersion(version: number): GlobalModel | undefined {
    return this.versions.get(version);
  }

  get done(): boolean {
    return this.stopCtl.signal.aborted || this.metrics.targetHit || this.privacyStop !== undefined;
  }

  // ---------------------------------------------------------------- versions

  aggView(): AggregateView {
    const agg = this.agg;
    return {
      get count() {
        return agg.count;
      },
      get totalWeight() {
        return agg.totalWeight;
      },
      mean: () => agg.result(),
    };
  }

  /** compression.downlink: publishes versions agents rebuild bit-exactly from deltas, and keeps those deltas. */
  get downlink(): DownlinkDeltas | undefined {
    if (this.downlinkState === undefined) {
      const spec = this.run.config.compression.downlink;
      this.downlinkState = spec ? new DownlinkDeltas(spec) : null;
    }
    return this.downlinkState ?? undefined;
  }

  /** Makes `weights` the next global model (in memory); registering and evaluating it is the caller's next step. */
  nextVersion(weights: Float32Array): GlobalModel {
    // With a lossy downlink the version is what agents reconstruct (previous + decoded delta), so its sha256 holds for them.
    const published = this.downlink?.publish(this.global, weights) ?? weights;
    const next = makeGlobalModel(this.run.id, this.global.version + 1, { ...this.global.blob, weights: published });
    // The strategy state that produced it (server optimizer moments) is saved with its record.
    this.ctx.stageStrategyState(next.version);
    this.setGlobal(next);
    return next;
  }

  /** Makes `weights` the next global version, registers and evaluates it. */
  async publishVersion(weights: Float32Array, record: RoundRecord): Promise<void> {
    const next = this.nextVersion(weights);
    record.version = next.version;
    await this.registerVersion(next, record.round);
    await this.evaluateVersion(next, record);
  }

  private setGlobal(g: GlobalModel): void {
    this.global = g;
    this.versions.set(g.version, g);
    // Keep recent versions for agents still downloading or training on them; older ones live in the store.
    for (const v of this.versions.keys()) if (v <= g.version - this.traits.keepVersions) this.versions.delete(v);
  }

  async registerVersion(g: GlobalModel, round: number): Promise<void> {
    await this.deps.store.putModel(g.sha256, g.blob);
    // The strategy state that made this version (DP steps) is durable before the version is released.
    await this.ctx.persistStrategyState();
    // Serving agents hot-swap every new version: tell the online ones it exists (run, version, sha256). Once the
    // run has a promotion (fedge model promote), they follow promotions only (Coordinator.promoteModel announces).
    if (g.version > 0 && !this.run.promotion) this.deps.registry.announce(this.tasks.announce(g, round));
    this.ctx.publishVersion(g, round);
  }

  async evaluateVersion(next: GlobalModel, record: RoundRecord): Promise<void> {
    if (!this.deps.evaluateCentral || !this.config.centralEvaluation) return;
    if (this.traits.showEvaluating) {
      this.live = { ...this.live, phase: 'evaluating' };
      this.emitUpdate();
    }
    const ev = await this.deps.evaluateCentral(next.blob);
    const metrics = { ...(ev.metrics ? this.metrics.pick(ev.metrics) : {}), ...(Number.isFinite(ev.accuracy) && !ev.metrics ? { accuracy: ev.accuracy } : {}) };
    record.centralLoss = ev.loss;
    if (Number.isFinite(ev.accuracy)) record.centralAccuracy = ev.accuracy;
    record.centralMetrics = metrics;
    this.ctx.setCentral(next.version, { loss: ev.loss, accuracy: ev.accuracy, metrics });
    this.metrics.checkTarget(next.version, record.round, { loss: ev.loss, accuracy: ev.accuracy, ...metrics });
  }

  /** Central accuracy of version 0, so every run shows where training started from. */
  async evaluateInitial(): Promise<void> {
    if (!this.deps.evaluateCentral || !this.config.centralEvaluation || this.run.round > 0) return;
    const ev = await this.deps.evaluateCentral(this.global.blob);
    this.ctx.setInitialCentral({ loss: ev.loss, accuracy: ev.accuracy, ...(ev.metrics ? { metrics: this.metrics.pick(ev.metrics) } : {}) });
  }

  // ---------------------------------------------------------------- records and metrics

  /** Data lineage: the fingerprint of the dataset the agent trained on, as it reported it when it joined. */
  lineage(agentId: string): { fingerprint?: string } {
    const f = this.run.data ? this.deps.registry.profile(agentId)?.fingerprint : undefined;
    return f ? { fingerprint: f } : {};
  }

  /** Saves a finished round's (or step's) record with the run's new state. */
  async finishRecord(record: RoundRecord, round: OpenRound): Promise<void> {
    // Participants may have been resolved after the record was drafted (async failures); take the final list.
    if (round.failures.length) record.reason ??= summarizeFailures(round.failures);
    this.ctx.recordRound(record, this.global.version, round.participants());
    // Every result of a sync round is in: the federated evaluation of the version it trained from is complete.
    if (this.config.mode === 'sync') this.metrics.checkFederatedTarget(round.baseVersion);
    this.log.info(
      {
        round: record.round,
        version: record.version,
        completed: round.accepted.length,
        failed: round.failures.length,
        staleness: record.stalenessHistogram,
        trainLoss: record.trainLoss,
        centralAccuracy: record.centralAccuracy,
        seconds: record.seconds,
      },
      this.traits.published,
    );
    await this.persist();
    // Retention must never fail a round: a failed pass leaves blobs that the next one (or fedge model gc) frees.
    await this.deps.afterVersion?.(this.ctx).catch((err: unknown) => this.log.warn({ err }, 'model retention failed; old versions are kept for now'));
  }

  /** A draft record of a closed round or full buffer (not in the run until finishRecord). */
  roundRecord(round: OpenRound): RoundRecord {
    const ended = new Date();
    const entries = round.accepted.map((a) => ({ weight: a.numExamples, metrics: a.metrics }));
    const rec: RoundRecord = {
      round: round.round,
      baseVersion: round.baseVersion,
      status: 'completed',
      startedAt: round.startedAt.toISOString(),
      endedAt: ended.toISOString(),
      seconds: (ended.getTime() - round.startedAt.getTime()) / 1000,
      bytesReceived: round.bytesReceived,
      bytesSent: round.bytesSent,
      // Ratios to dense float32: every accepted update as n float32 values, every download as the full model.
      ...(round.bytesReceived > 0 ? { bytesReceivedDense: round.accepted.length * 4 * this.agg.numParams } : {}),
      ...(round.bytesSent > 0 ? { bytesSentDense: round.bytesSentDense } : {}),
      stalenessHistogram: stalenessHistogram(round.accepted.map((a) => round.baseVersion - (a.baseVersion ?? round.baseVersion))),
    };
    const tl = weightedMetric(entries, 'train_loss');
    const ta = weightedMetric(entries, 'train_accuracy');
    if (tl !== undefined) rec.trainLoss = tl;
    if (ta !== undefined) rec.trainAccuracy = ta;
    if (this.run.data) {
      const tm = combineMetrics(round.accepted.map((a) => ({ n: a.numExamples, metrics: stripPrefix(a.metrics, 'train_') })), this.metrics.task);
      if (Object.keys(tm).length) rec.trainMetrics = tm;
    }
    if (round.failures.length) rec.reason = summarizeFailures(round.failures);
    return rec;
  }

  /** A private run's record carries the epsilon spent after its aggregation and the clip norm it used. */
  recordSpent(rec: RoundRecord): void {
    const spent = this.strategy.privacy?.spent();
    if (spent) Object.assign(rec, { epsilon: spent.epsilon, clipNorm: spent.clipNorm });
  }

  // ---------------------------------------------------------------- late and outstanding tasks

  /** Updates the recorded reason of a late participant in the round it was invited to. */
  noteLateOutcome(inv: Invitee, what: string): void {
    this.ctx.noteLateOutcome(inv.task.round, inv.agent.id, what);
  }

  dropOutstanding(id: string, inv: Invitee, why: string): void {
    this.outstanding.delete(id);
    this.deps.registry.cancel(id, inv.task);
    this.noteLateOutcome(inv, why);
  }

  cancelOutstanding(why: string): void {
    for (const [id, inv] of this.outstanding) this.dropOutstanding(id, inv, why);
  }

  // ---------------------------------------------------------------- live view and saves

  /**
   * Rebuilds the live view (O(participants)) at most every LIVE_REFRESH_MS: a round of 1,000 participants sends
   * thousands of events, and rebuilding it for each one was quadratic in the round's size.
   */
  refreshLive(): void {
    this.liveTimer ??= setTimeout(() => {
      this.liveTimer = undefined;
      this.rebuildLive();
    }, LIVE_REFRESH_MS).unref();
  }

  private liveTimer: NodeJS.Timeout | undefined;

  private rebuildLive(): void {
    const own = this.liveOverride?.();
    if (own) this.live = own;
    else if (this.current) this.live = { ...this.live, participants: this.current.live() };
    this.emitUpdate();
  }

  emit(): void {
    this.emitUpdate();
  }

  async persist(): Promise<void> {
    await this.ctx.persist();
    this.emitUpdate();
  }

  /**
   * `err` as a StorageError when it is a failed write of the data directory (reported once to the coordinator,
   * which suspends the runs); undefined for anything else.
   */
  storageFault(err: unknown): StorageError | undefined {
    const fault = storageError(err, this.deps.scratchDir ?? 'the data directory');
    if (fault) this.deps.onStorageFault?.(fault);
    return fault;
  }
}
