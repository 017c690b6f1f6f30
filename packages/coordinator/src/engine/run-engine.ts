/**
 * Drives one run over numbered global versions: synchronous FedAvg rounds (deadline, over-selection, late-result
 * policy) or asynchronous buffered aggregation (FedBuff). Aggregation streams; failures are recorded as data.
 */
import { EventEmitter } from 'node:events';
import {
  RejectedUpdateError,
  createRng,
  ENCODING_OF,
  checkEncodedSize,
  l2Norm,
  createDecoder,
  describeSpecMismatch,
  totalParams,
  type ModelBlob,
  type ResultHeaderMsg,
  type SignedModelRef,
  type TensorSpec,
} from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import type { AgentRecord, Participant, RoundRecord, RunRecord, Store } from '../store/store.js';
import type { RunContext } from './run-context.js';
import { TaskFactory } from './tasks.js';
import type { CandidateAgent, Strategy } from '../strategy/strategy.js';
import { sampleAgents, weightedMetric, summarizeFailures } from '../strategy/fedavg.js';
import { stalenessHistogram, stalenessWeight } from '../strategy/staleness.js';
import { StreamingFedAvg, type UpdateSlot } from '../strategy/aggregate.js';
import type { AgentRegistry } from './agent-registry.js';
import { makeGlobalModel, type GlobalModel } from './global-model.js';
import { OpenRound, type Invitee } from './round.js';
import { StagedUpload, type UploadSink } from './upload.js';
import type { UpdateSpool } from './update-spool.js';
import { moduleLogger, type Logger } from '../log.js';
import { LEGACY_METRIC_TASK, combineMetrics, stripPrefix, type MetricPart, type MetricTask } from './task-metrics.js';
import { stopRule } from '../config/task-config.js';

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
  /** Agents this run may invite (those whose data fits the run's schema); default every agent. */
  eligible?: (a: AgentRecord) => boolean;
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

/** Reasons that a metric reported by an agent cannot be trusted. */
function checkMetrics(metrics: Record<string, number>): void {
  for (const [k, v] of Object.entries(metrics))
    if (!Number.isFinite(v)) throw new RejectedUpdateError('non_finite_metric', `metrics.${k}: must be a finite number, got ${v}`);
}

export class RunEngine extends EventEmitter<{ update: [RunRecord, LiveView]; end: [RunRecord] }> {
  private global!: GlobalModel;
  /** Tasks of every kind, built and signed in one place. */
  private readonly tasks: TaskFactory;
  private readonly versions = new Map<number, GlobalModel>();
  /** The open round (sync) or the buffer being filled (async). */
  private current: OpenRound | undefined;
  private readonly agg: StreamingFedAvg;
  private readonly stopCtl = new AbortController();
  private readonly log: Logger;
  private readonly specs: TensorSpec[];
  private readonly rng: () => number;
  /** Sync: tasks of closed rounds whose results may still be folded into the next round. Async: tasks in flight. */
  private readonly outstanding = new Map<string, Invitee>();
  /** Federated evaluation per version: each agent's example count and metrics (eval_ prefix removed). */
  private readonly evalParts = new Map<number, MetricPart[]>();
  /** The task's metric names and how they combine (legacy runs: accuracy of 10-class classification). */
  private readonly metricNames: readonly string[];
  private readonly metricTask: MetricTask;
  private readonly stopAt: ReturnType<typeof stopRule>;
  private targetHit = false;
  /** Why the run ended early on its privacy budget (config.privacy.maxEpsilon). */
  private privacyStop: string | undefined;
  private asyncStep: { done: Promise<void>; resolve: () => void } | undefined;
  private filling = false;
  /** Async with a spool: commits run one at a time (spool, persist, fold, maybe cut) so the saved buffer matches the accumulator. */
  private asyncCommits: Promise<void> = Promise.resolve();
  /** Async with a spool: resolves once the last cut version and its record are durable; the next buffer waits for it. */
  private cutPersisted: Promise<void> = Promise.resolve();
  live: LiveView = { phase: 'waiting', round: 0, participants: [] };

  /** `ctx` is the run record's only writer; the engine reads the record through it and changes it by its transitions. */
  constructor(readonly ctx: RunContext, initial: ModelBlob, private readonly deps: RunEngineDeps) {
    super();
    const run = ctx.run;
    ctx.attachStrategy(deps.strategy);
    this.tasks = new TaskFactory(run, {
      ...(deps.signModel ? { signModel: deps.signModel } : {}),
      ...(deps.strategy.taskConfig ? { trainExtras: () => deps.strategy.taskConfig!() } : {}),
    });
    this.log = moduleLogger('run').child({ runId: run.id });
    this.specs = initial.tensors;
    this.setGlobal(makeGlobalModel(run.id, run.modelVersion, initial));
    // Two staging slots bound memory to (1 accumulator + 2 updates) whatever the number of agents.
    this.agg = StreamingFedAvg.create(totalParams(initial.tensors), { slots: 2 });
    this.rng = createRng(run.config.seed);
    this.metricTask = run.data?.task ?? LEGACY_METRIC_TASK;
    this.metricNames = this.metricTask.metrics;
    this.stopAt = stopRule(run.config);
  }

  /** The run record (read-only here: RunContext writes it). */
  get run(): Readonly<RunRecord> {
    return this.ctx.run;
  }

  get config(): RunConfig {
    return this.run.config;
  }

  get globalModel(): GlobalModel {
    return this.global;
  }

  modelVersion(version: number): GlobalModel | undefined {
    return this.versions.get(version);
  }

  stop(reason = 'stopped by user'): void {
    if (this.isFinished()) return;
    this.ctx.setMessage(reason);
    this.stopCtl.abort(new Error(reason));
    this.current?.close('stopped');
    this.asyncStep?.resolve();
  }

  isFinished(): boolean {
    return ['completed', 'failed', 'stopped'].includes(this.run.status);
  }

  private get done(): boolean {
    return this.stopCtl.signal.aborted || this.targetHit || this.privacyStop !== undefined;
  }

  /** Runs every round; resolves when the run ends (never rejects: failures end up in the run record). */
  async execute(): Promise<RunRecord> {
    const c = this.config;
    try {
      this.ctx.begin();
      await this.registerVersion(this.global, 0);
      await this.evaluateInitial();
      if (c.mode === 'async') await this.asyncLoop();
      else {
        for (let r = this.run.round + 1; r <= c.rounds && !this.done; r++) {
          this.privacyStop = this.deps.strategy.privacy?.budgetStop(r);
          if (this.privacyStop) {
            this.log.info({ round: r }, this.privacyStop);
            break;
          }
          await this.waitForAgents(r);
          if (this.done) break;
          await this.trainRound(r);
        }
      }
      this.cancelOutstanding('run finished');
      if (!this.stopCtl.signal.aborted) await this.finalEvaluation();
      if (this.stopCtl.signal.aborted) this.ctx.setStatus('stopped');
      else {
        const n = this.run.rounds.filter((x) => x.status === 'completed').length;
        const unit = c.mode === 'async' ? 'aggregation steps' : 'rounds';
        const message = this.privacyStop
          ? `${this.privacyStop}; completed ${n} of ${c.rounds} ${unit}`
          : this.run.reachedTarget
          ? `reached ${this.stopAt?.metric === 'accuracy' ? 'target accuracy' : `stopAt ${this.stopAt?.metric}`} ${this.stopAt?.value} at version ${this.run.reachedTarget.version} (${(this.run.reachedTarget.value ?? this.run.reachedTarget.accuracy).toFixed(4)})`
          : `completed ${n} of ${c.rounds} ${unit}`;
        this.ctx.setStatus('completed', message);
      }
    } catch (err) {
      if (this.stopCtl.signal.aborted) this.ctx.setStatus('stopped');
      else {
        this.ctx.setStatus('failed', err instanceof Error ? err.message : String(err));
        this.log.error({ err }, 'run failed');
      }
    } finally {
      this.cancelOutstanding('run ended');
      this.agg.dispose();
    }
    let modelPath: string | undefined;
    try {
      if (this.deps.saveFinalModel) modelPath = await this.deps.saveFinalModel(this.run, this.global.blob);
    } catch (err) {
      this.log.error({ err }, 'saving the final model failed');
    }
    this.ctx.finish(modelPath);
    this.live = { phase: 'done', round: this.run.round, participants: [] };
    await this.persist();
    this.log.info({ status: this.run.status, version: this.global.version, message: this.run.statusMessage }, 'run ended');
    this.emit('end', this.ctx.run);
    return this.ctx.run;
  }

  /** Central accuracy of version 0, so every run shows where training started from. */
  private async evaluateInitial(): Promise<void> {
    if (!this.deps.evaluateCentral || !this.config.centralEvaluation || this.run.round > 0) return;
    const ev = await this.deps.evaluateCentral(this.global.blob);
    this.ctx.setInitialCentral({ loss: ev.loss, accuracy: ev.accuracy, ...(ev.metrics ? { metrics: this.pick(ev.metrics) } : {}) });
  }

  private async waitForAgents(round: number): Promise<void> {
    const need = this.config.agentsPerRound.min;
    if (this.deps.registry.available(this.deps.eligible).length >= need) return;
    this.ctx.setStatus('waiting', `waiting for ${need} available agents (${this.deps.registry.available(this.deps.eligible).length} now)`);
    this.live = { phase: 'waiting', round, participants: [] };
    this.log.info({ need }, this.run.statusMessage);
    await this.persist();
    const timeout = AbortSignal.timeout(this.config.waitForAgentsSeconds * 1000);
    try {
      await this.deps.registry.waitForAvailable(need, AbortSignal.any([this.stopCtl.signal, timeout]), this.deps.eligible);
    } catch (err) {
      if (this.stopCtl.signal.aborted) return;
      throw new Error(`no round could start: fewer than ${need} agents were available for ${this.config.waitForAgentsSeconds}s (agentsPerRound.min)`, { cause: err });
    }
  }

  // ---------------------------------------------------------------- synchronous rounds

  private async trainRound(r: number): Promise<void> {
    const c = this.config;
    this.ctx.setStatus('running', `round ${r}/${c.rounds}`);
    const spool = this.deps.spool;
    const resumed = spool && this.run.openRound?.round === r ? this.run.openRound : undefined;
    let invited: CandidateAgent[];
    let target = Infinity;
    if (resumed) {
      // A round interrupted by a restart continues with the same invitees and task seeds.
      invited = await this.waitForNamed(resumed.invitees.map((i) => i.name));
      this.log.info({ round: r, accepted: resumed.accepted.map((a) => a.name) }, 'round resumed after restart');
    } else {
      // One generator per round: selection does not depend on how many draws earlier rounds (or a restart) made.
      const rng = createRng(c.seed * 1_000_003 + r);
      const available = this.deps.registry.available(this.deps.eligible);
      const chosen = this.deps.strategy.selectAgents(available, rng);
      // Over-selection: invite extra agents and close on the first results that suffice (Bonawitz et al. 2019).
      const rest = available.filter((a) => !chosen.includes(a));
      const extra = c.sync.overSelection > 0 ? sampleAgents(rest, 0, Math.ceil(chosen.length * c.sync.overSelection), rng) : [];
      if (c.sync.overSelection > 0) target = chosen.length;
      invited = [...chosen, ...extra];
      if (spool) {
        spool.removeRound(this.run.id, r - 1);
        this.ctx.setOpenRound({ round: r, baseVersion: this.global.version, invitees: invited.map((a, index) => ({ name: a.name, index })), accepted: [] });
        await this.ctx.persist();
      }
    }
    const round = this.openRound(r, 'train', invited, c.roundDeadlineSeconds, target, resumed);
    this.log.info({ round: r, agents: invited.map((a) => a.name), target, baseVersion: round.baseVersion }, 'round started');
    await round.settled;
    round.close('deadline');
    this.current = undefined;
    // A stopped run ends here: the interrupted round made no model and is not a failed round.
    if (this.stopCtl.signal.aborted) return;
    if (spool && this.run.openRound?.round === r) await this.foldSpooled(this.run.openRound);
    // Late results carried from the round before this one had their chance; stop waiting for them.
    for (const [id, inv] of this.outstanding) if (inv.task.round < r) this.dropOutstanding(id, inv, 'not back by the end of the next round');

    this.live = { ...this.live, phase: 'aggregating' };
    const t0 = performance.now();
    const outcome = this.deps.strategy.aggregate(this.global.blob.weights, this.aggView(), round.accepted, round.failures);
    const record = this.roundRecord(round);
    record.aggregationMs = performance.now() - t0;
    const spent = this.deps.strategy.privacy?.spent();
    if (spent) Object.assign(record, { epsilon: spent.epsilon, clipNorm: spent.clipNorm });
    if (outcome.ok) await this.publishVersion(outcome.weights, record);
    else {
      record.status = 'failed';
      record.reason = outcome.reason;
      this.log.warn({ round: r, reason: outcome.reason }, 'round produced no new model');
    }
    // The round's record and the end of its open state are saved together; only then are its updates dropped.
    this.ctx.setOpenRound(undefined);
    await this.finishRecord(record, round);
    spool?.removeRound(this.run.id, r);
  }

  /** Folds a round's spooled updates in agent-name order: the same model whatever order they arrived in. */
  private async foldSpooled(state: NonNullable<RunRecord['openRound']>): Promise<void> {
    this.agg.reset();
    const entries = [...state.accepted].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) await this.foldFromSpool(e.file, e.weight);
  }

  /** Reads one spooled update into a staging slot and folds it. */
  private async foldFromSpool(file: string, weight: number): Promise<void> {
    const slot = await this.agg.acquire();
    try {
      this.deps.spool!.read(file, new Uint8Array(slot.view.buffer, slot.view.byteOffset, slot.view.byteLength));
      this.agg.fold(slot, weight);
    } finally {
      this.agg.release(slot);
    }
  }

  /** After a restart: the named agents once they are back (up to waitForAgentsSeconds), in the given order. */
  private async waitForNamed(names: string[]): Promise<CandidateAgent[]> {
    const deadline = Date.now() + this.config.waitForAgentsSeconds * 1000;
    const find = (): CandidateAgent[] => {
      const online = new Map(this.deps.registry.available(this.deps.eligible).map((a) => [a.name, a]));
      return names.flatMap((n) => (online.has(n) ? [online.get(n)!] : []));
    };
    while (find().length < names.length && Date.now() < deadline && !this.stopCtl.signal.aborted) await new Promise((r) => setTimeout(r, 200));
    return find();
  }

  /** What becomes of an agent still training when its round closes: carried to the next round, or cancelled. */
  private lateHandler(inv: Invitee): string {
    if (this.config.mode === 'sync' && this.config.sync.lateResults === 'next-round' && !this.stopCtl.signal.aborted) {
      this.outstanding.set(inv.agent.id, inv);
      return 'its result will be folded into the next round';
    }
    this.deps.registry.cancel(inv.agent.id, inv.task);
    return 'result discarded';
  }

  private openRound(
    r: number,
    kind: 'train' | 'evaluate',
    chosen: CandidateAgent[],
    deadlineSeconds: number,
    target = Infinity,
    resumed?: NonNullable<RunRecord['openRound']>,
  ): OpenRound {
    this.agg.reset();
    const deadline = Date.now() + deadlineSeconds * 1000;
    const round = new OpenRound(r, kind, this.global.version, deadline, target);
    this.current = round;
    const timer = setTimeout(() => round.close('deadline', (inv) => this.lateHandler(inv)), deadlineSeconds * 1000);
    void round.settled.then(() => {
      clearTimeout(timer);
      // Closing here (not later in the loop) means no result can slip in between "enough" and aggregation.
      if (round.open && round.closedBy === 'enough') round.close('enough', (inv) => this.lateHandler(inv));
    });
    // All invitees first: resolving one before the others exist would settle the round early.
    chosen.forEach((agent, i) => {
      // Task seeds follow the persisted invitation order, so a resumed round trains exactly as the original would.
      const index = resumed?.invitees.find((x) => x.name === agent.name)?.index ?? i;
      round.invitees.set(agent.id, { agent, task: this.tasks.round(kind, this.global, r, index, deadline), state: 'invited', sentAt: Date.now(), baseVersion: this.global.version });
    });
    chosen.forEach((agent) => {
      const task = round.invitees.get(agent.id)!.task;
      const done = resumed?.accepted.find((x) => x.name === agent.name);
      if (done) {
        // Accepted before the restart: its update is in the spool; do not ask again.
        const p = { agentId: agent.id, name: agent.name, outcome: 'completed' as const, numExamples: done.numExamples, seconds: done.seconds, metrics: done.metrics, baseVersion: done.baseVersion, staleness: done.staleness, weight: done.weight };
        round.resolve(agent.id, p, { agentId: agent.id, numExamples: done.numExamples, weight: done.weight, metrics: done.metrics, baseVersion: done.baseVersion });
        return;
      }
      if (!this.deps.registry.assign(agent.id, task))
        round.resolve(agent.id, { agentId: agent.id, name: agent.name, outcome: 'dropped', reason: 'agent unavailable when the task was sent' });
    });
    if (resumed) {
      // Invitees that did not come back after the restart.
      for (const x of resumed.invitees) {
        if (chosen.some((a) => a.name === x.name) || resumed.accepted.some((a) => a.name === x.name)) continue;
        this.log.warn({ round: r, name: x.name }, 'invitee did not reconnect after the restart');
      }
    }
    if (chosen.length === 0) round.close('deadline');
    this.live = { phase: kind === 'train' ? 'training' : 'evaluating', round: r, deadline, participants: round.live() };
    this.emitUpdate();
    return round;
  }

  /** Asks agents to evaluate the final model so the last version gets federated metrics too. */
  private async finalEvaluation(): Promise<void> {
    const last = this.run.rounds.at(-1);
    if (!last?.version) return;
    const chosen = this.deps.strategy.selectAgents(this.deps.registry.available(this.deps.eligible), this.rng);
    if (chosen.length === 0) return;
    const round = this.openRound(last.round, 'evaluate', chosen, Math.min(this.config.roundDeadlineSeconds, 300));
    await round.settled;
    round.close('deadline');
    this.current = undefined;
    for (const a of round.accepted) this.noteEval(round.baseVersion, a.metrics);
    await this.persist();
  }

  // ---------------------------------------------------------------- asynchronous buffered aggregation

  /** FedBuff: agents train continuously; every K accepted updates make a new version. */
  private async asyncLoop(): Promise<void> {
    const c = this.config;
    this.ctx.setStatus('running');
    // Steps continue from the last persisted one after a restart.
    this.current = new OpenRound(this.run.round + 1, 'train', this.global.version, Infinity, c.async.bufferSize);
    this.agg.reset();
    this.checkPrivacyBudget(this.run.round + 1);
    if (this.deps.spool) await this.restoreAsyncBuffer(this.current);
    const fill = (): void => this.fillAsync();
    this.deps.registry.on('changed', fill);
    try {
      while (!this.done && this.run.rounds.length < c.rounds) {
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        this.asyncStep = { done, resolve };
        this.fillAsync();
        await done;
      }
    } finally {
      this.deps.registry.off('changed', fill);
      this.asyncStep = undefined;
      this.current = undefined;
    }
  }

  /** Keeps `concurrency` agents training on the newest version. */
  private fillAsync(): void {
    if (this.filling || this.done || !this.current || this.config.mode !== 'async') return;
    this.filling = true;
    try {
      const limit = this.config.async.concurrency ?? Infinity;
      // Under DP an agent contributes at most once to a buffer: its sensitivity bound is per step.
      const contributed = this.deps.strategy.privacy ? new Set(this.current.accepted.map((a) => a.agentId)) : undefined;
      const free = sampleAgents(
        this.deps.registry.available(this.deps.eligible).filter((a) => !this.outstanding.has(a.id) && !contributed?.has(a.id)),
        1,
        0,
        this.rng,
      );
      for (const agent of free) {
        if (this.outstanding.size >= limit) break;
        const deadline = Date.now() + this.config.roundDeadlineSeconds * 1000;
        const task = this.tasks.round('train', this.global, this.current.round, this.outstanding.size, deadline);
        const inv: Invitee = { agent, task, state: 'invited', sentAt: Date.now(), baseVersion: this.global.version };
        this.outstanding.set(agent.id, inv);
        if (!this.deps.registry.assign(agent.id, task)) {
          this.outstanding.delete(agent.id);
          continue;
        }
        setTimeout(() => {
          if (this.outstanding.get(agent.id) === inv) this.asyncFailure(inv, 'late', `no result within roundDeadlineSeconds (${this.config.roundDeadlineSeconds}s)`);
        }, this.config.roundDeadlineSeconds * 1000).unref();
      }
    } finally {
      this.filling = false;
    }
    this.refreshLive();
  }

  /** Records an async task's failure in the buffer being filled and frees the agent. */
  private asyncFailure(inv: Invitee, outcome: 'late' | 'dropped' | 'rejected', reason: string): void {
    if (this.outstanding.get(inv.agent.id) !== inv) return;
    this.outstanding.delete(inv.agent.id);
    inv.abortUpload?.(reason);
    if (outcome === 'dropped') this.deps.registry.release(inv.agent.id, inv.task.taskId, false);
    else this.deps.registry.cancel(inv.agent.id, inv.task);
    const buf = this.current;
    if (buf) {
      buf.addExtra({ ...inv, state: 'invited' }, inv.task.taskId);
      buf.resolve(inv.task.taskId, { agentId: inv.agent.id, name: inv.agent.name, outcome, reason, baseVersion: inv.baseVersion });
    }
    this.log.warn({ agentId: inv.agent.id, name: inv.agent.name, outcome, reason }, 'async task failed');
    queueMicrotask(() => this.fillAsync());
  }

  /** Cuts a new version from exactly K folded updates; runs synchronously inside the K-th commit. */
  private cutAsyncVersion(): void {
    const buf = this.current!;
    buf.open = false;
    const t0 = performance.now();
    // The FedBuff step is the strategy's (FedAvg: staleness-weighted sum over the buffer's examples; DP: noised sum / K).
    const out = this.deps.strategy.aggregateBuffered(this.global.blob.weights, this.aggView(), buf.accepted, buf.failures);
    const weights = out.ok ? out.weights : this.global.blob.weights;
    this.agg.reset();
    const record = this.roundRecord(buf);
    record.aggregationMs = performance.now() - t0;
    const spent = this.deps.strategy.privacy?.spent();
    if (spent) Object.assign(record, { epsilon: spent.epsilon, clipNorm: spent.clipNorm });
    this.checkPrivacyBudget(buf.round + 1);
    const next = makeGlobalModel(this.run.id, this.global.version + 1, { ...this.global.blob, weights });
    // The new version exists before anything else is committed, so later updates see their true staleness.
    this.setGlobal(next);
    record.version = next.version;
    this.current = new OpenRound(buf.round + 1, 'train', next.version, Infinity, this.config.async.bufferSize);
    const spool = this.deps.spool;
    if (spool) this.ctx.setOpenRound({ round: buf.round + 1, baseVersion: next.version, invitees: [], accepted: [] });
    this.cutPersisted = (async () => {
      await this.registerVersion(next, buf.round);
      await this.evaluateVersion(next, record);
      // Saves the version's record together with the next (empty) buffer; then this buffer's spool can go.
      await this.finishRecord(record, buf);
      spool?.removeRound(this.run.id, buf.round);
      if (this.run.rounds.length >= this.config.rounds || this.targetHit || this.privacyStop) this.asyncStep?.resolve();
    })().catch((err: unknown) => this.log.error({ err }, 'finishing a version failed'));
    this.fillAsync();
  }

  /** After a restart: folds the persisted buffer's updates back in (nothing accepted is lost); else starts one. */
  private async restoreAsyncBuffer(buf: OpenRound): Promise<void> {
    const saved = this.run.openRound;
    if (saved && saved.round === buf.round && saved.baseVersion === buf.baseVersion && saved.accepted.length > 0) {
      for (const [i, e] of saved.accepted.entries()) {
        await this.foldFromSpool(e.file, e.weight);
        const key = `restored-${i}`;
        const agent = { id: key, name: e.name, numExamples: e.numExamples };
        buf.addExtra({ agent, task: { ...this.tasks.round('train', this.global, buf.round, 0, 0), taskId: key }, state: 'invited', sentAt: Date.now(), baseVersion: e.baseVersion }, key);
        buf.resolve(key, { agentId: key, name: e.name, outcome: 'completed', numExamples: e.numExamples, seconds: e.seconds, metrics: e.metrics, baseVersion: e.baseVersion, staleness: e.staleness, weight: e.weight, reason: 'accepted before a coordinator restart' },
          { agentId: key, numExamples: e.numExamples, weight: e.weight, metrics: e.metrics, baseVersion: e.baseVersion });
      }
      this.log.info({ step: buf.round, restored: saved.accepted.length }, 'async buffer restored after restart');
      if (buf.accepted.length >= this.config.async.bufferSize) this.cutAsyncVersion();
      return;
    }
    this.ctx.setOpenRound({ round: buf.round, baseVersion: buf.baseVersion, invitees: [], accepted: [] });
    await this.ctx.persist();
  }

  /** Async: stops dispatching before the step that would exceed privacy.maxEpsilon. */
  private checkPrivacyBudget(step: number): void {
    const stop = this.deps.strategy.privacy?.budgetStop(step);
    if (!stop || this.privacyStop) return;
    this.privacyStop = stop;
    this.log.info({ step }, stop);
    this.asyncStep?.resolve();
  }

  // ---------------------------------------------------------------- uploads

  /** Called by the coordinator when an agent disconnects: its pending task fails, the round goes on. */
  agentGone(agentId: string, reason: string): void {
    const carried = this.outstanding.get(agentId);
    if (carried && this.config.mode === 'async') {
      this.asyncFailure(carried, 'dropped', `disconnected: ${reason}`);
      return;
    }
    if (carried) this.outstanding.delete(agentId);
    const round = this.current;
    const inv = round?.invitees.get(agentId);
    if (!round || !inv || inv.participant) return;
    inv.abortUpload?.('disconnected');
    round.resolve(agentId, { agentId, name: inv.agent.name, outcome: 'dropped', reason: `disconnected: ${reason}` });
    this.deps.registry.release(agentId, inv.task.taskId, false);
    this.refreshLive();
  }

  /** Records a model download so the round's bytes-on-the-wire figure is right. */
  noteModelSent(bytes: number): void {
    if (this.current) this.current.bytesSent += bytes;
  }

  /** Rejects an agent's current task (used when its result header could not even be parsed). */
  rejectTask(agentId: string, taskId: string, reason: string, message: string): void {
    const out = this.outstanding.get(agentId);
    if (out?.task.taskId === taskId && this.config.mode === 'async') return this.asyncFailure(out, 'rejected', `${reason}: ${message}`);
    const round = this.current;
    const inv = round?.invitees.get(agentId);
    if (round && inv && inv.task.taskId === taskId) this.failParticipant(round, agentId, reason, message);
  }

  /**
   * Validates a result header against the task it answers and returns a sink for its payload.
   * Throws RejectedUpdateError for anything that cannot be accepted; that is recorded as the agent's failure.
   */
  async beginUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    if (this.config.mode === 'async' && h.kind === 'train') return this.beginAsyncUpload(h);
    const round = this.current;
    let inv = round?.invitees.get(h.agentId);
    const carried = this.outstanding.get(h.agentId);
    if (!inv && carried && carried.task.taskId === h.taskId) {
      this.outstanding.delete(h.agentId);
      if (!round?.open || round.kind !== 'train') {
        this.deps.registry.release(h.agentId, h.taskId, false);
        this.noteLateOutcome(carried, 'arrived when no round was open; discarded');
        throw new RejectedUpdateError('late_discarded', `round ${carried.task.round} closed and no round is open to take its late result`);
      }
      // A late result from an earlier round joins this one, discounted by its staleness.
      inv = { agent: carried.agent, task: carried.task, state: 'invited', sentAt: carried.sentAt, baseVersion: carried.baseVersion };
      round.addExtra(inv);
    }
    const reject = (reason: string, message: string): never => {
      if (round && inv && !inv.participant) this.failParticipant(round, h.agentId, reason, message);
      throw new RejectedUpdateError(reason, message);
    };
    if (!round || !round.open || !inv || h.round !== inv.task.round)
      throw new RejectedUpdateError('stale_round', `round: ${h.round} is not open (current: ${round?.open ? round.round : 'none'})`);
    if (inv.participant) throw new RejectedUpdateError('duplicate', `a result for this task was already recorded (${inv.participant.outcome})`);
    this.checkHeader(h, inv, round.kind, reject);
    const staleness = round.baseVersion - inv.baseVersion;
    const weight = this.deps.strategy.weightOf(h.numExamples) * stalenessWeight(this.config.staleness, staleness);
    const slot = round.kind === 'train' ? await this.acquireSlot(inv, () => round.open && !inv!.participant) : undefined;
    return this.stage(h, inv, slot, () => round, () => ({ staleness, weight }));
  }

  private async beginAsyncUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    const inv = this.outstanding.get(h.agentId);
    if (!inv || inv.task.taskId !== h.taskId) throw new RejectedUpdateError('unknown_task', `task_id: "${h.taskId}" is not a task in flight for this agent`);
    const reject = (reason: string, message: string): never => {
      this.asyncFailure(inv, 'rejected', `${reason}: ${message}`);
      throw new RejectedUpdateError(reason, message);
    };
    if (h.round !== inv.task.round) reject('stale_round', `round: expected ${inv.task.round}, got ${h.round}`);
    this.checkHeader(h, inv, 'train', reject);
    const max = this.config.async.maxStaleness;
    const tau = (): number => this.global.version - inv.baseVersion;
    if (tau() > max) reject('too_stale', `update is ${tau()} versions behind; async.maxStaleness is ${max}`);
    const slot = await this.acquireSlot(inv, () => this.outstanding.get(h.agentId) === inv);
    return this.stage(h, inv, slot, () => this.current, () => {
      const staleness = tau();
      if (staleness > max) throw new RejectedUpdateError('too_stale', `update became ${staleness} versions behind while uploading; async.maxStaleness is ${max}`);
      return { staleness, weight: this.deps.strategy.weightOf(h.numExamples) * stalenessWeight(this.config.staleness, staleness) };
    });
  }

  private checkHeader(h: ResultHeaderMsg, inv: Invitee, kind: 'train' | 'evaluate', reject: (reason: string, message: string) => never): void {
    if (h.taskId !== inv.task.taskId) reject('unknown_task', `task_id: "${h.taskId}" is not the task sent to this agent`);
    // The agent reports a task it could not run (its data does not fit the task, training diverged): recorded at once, not at the deadline.
    if (h.error) reject('agent_failed', h.error);
    if (h.kind !== kind) reject('wrong_kind', `kind: expected ${kind}, got ${h.kind}`);
    if (h.modelVersion !== inv.baseVersion) reject('wrong_model_version', `model_version: expected ${inv.baseVersion}, got ${h.modelVersion}`);
    try {
      checkMetrics(h.metrics);
    } catch (err) {
      reject((err as RejectedUpdateError).reason, (err as Error).message);
    }
    if (kind === 'evaluate') {
      if (h.totalBytes !== 0) reject('size_mismatch', `total_bytes: an evaluation result carries no payload, got ${h.totalBytes}`);
      return;
    }
    const encoding = ENCODING_OF[this.config.compression.codec];
    if (h.encoding !== encoding) reject('bad_encoding', `encoding: this run's compression.codec is ${this.config.compression.codec}, so "${encoding}" is expected; got "${h.encoding}"`);
    const mismatch = describeSpecMismatch(this.specs, h.tensors as TensorSpec[]);
    if (mismatch) reject(mismatch.includes('dtype') ? 'wrong_dtype' : 'wrong_shape', mismatch);
    try {
      checkEncodedSize(h.encoding, h.totalBytes, this.global.bytes.byteLength / 4);
    } catch (err) {
      reject((err as RejectedUpdateError).reason, (err as Error).message);
    }
    if (h.numExamples < 1) reject('no_examples', 'num_examples: must be at least 1 for a training result');
  }

  /** Waits for a staging slot: this is what keeps memory flat however many agents upload at once. */
  private async acquireSlot(inv: Invitee, stillWanted: () => boolean) {
    inv.state = 'uploading';
    this.refreshLive();
    const ctl = new AbortController();
    inv.abortUpload = (why) => ctl.abort(new RejectedUpdateError('round_closed', why));
    const slot = await this.agg.acquire(ctl.signal);
    if (!stillWanted()) {
      this.agg.release(slot);
      throw new RejectedUpdateError('round_closed', 'the round closed while the upload waited');
    }
    return slot;
  }

  private stage(
    h: ResultHeaderMsg,
    inv: Invitee,
    slot: Awaited<ReturnType<RunEngine['acquireSlot']>> | undefined,
    target: () => OpenRound | undefined,
    weigh: () => { staleness: number; weight: number },
  ): UploadSink {
    const isAsync = this.config.mode === 'async' && h.kind === 'train';
    const complete = async (s: UpdateSlot | undefined): Promise<void> => {
      const round = target();
      if (!round) throw new RejectedUpdateError('round_closed', 'no round is open');
      const { staleness, weight } = weigh();
      if (s) {
        const bad = this.agg.firstNonFinite(s);
        if (bad >= 0) throw new RejectedUpdateError('non_finite', `update contains NaN or Infinity (first at parameter ${bad})`);
        // Central DP's sensitivity bound must not rest on agents' good will: an update longer than the clip norm its task
        // carried is refused (local DP updates carry noise, so their norm is not bounded by S).
        const clip = inv.task.config.clipNorm ?? 0;
        if (clip > 0 && !((inv.task.config.noiseStd ?? 0) > 0)) {
          const norm = l2Norm(s.view);
          if (norm > clip * (1 + 1e-5))
            throw new RejectedUpdateError('norm_exceeds_clip', `update L2 norm ${norm.toPrecision(6)} exceeds the clip norm ${clip.toPrecision(6)} of its task; agents must clip before sending`);
        }
        const state = this.run.openRound;
        const spooled = !!this.deps.spool && state?.round === round.round;
        if (spooled) {
          // Durable before acknowledged: the update file, then the run record naming it.
          const fileKey = isAsync ? inv.task.taskId : inv.agent.name;
          const file = this.deps.spool!.write(this.run.id, round.round, fileKey, new Uint8Array(s.view.buffer, s.view.byteOffset, s.view.byteLength));
          this.ctx.acceptUpdate({ name: inv.agent.name, numExamples: h.numExamples, weight, staleness, baseVersion: inv.baseVersion, metrics: h.metrics, file, seconds: (Date.now() - inv.sentAt) / 1000 });
          await this.ctx.persist();
        }
        // Sync folds spooled updates at round end, in name order; async folds now (its cut is immediate).
        if (!spooled || isAsync) this.agg.fold(s, weight);
      }
      round.bytesReceived += h.totalBytes;
      const key = isAsync ? inv.task.taskId : h.agentId;
      if (isAsync) {
        this.outstanding.delete(h.agentId);
        round.addExtra({ ...inv, state: 'invited' }, key);
      }
      const p: Participant = {
        agentId: h.agentId,
        name: inv.agent.name,
        outcome: 'completed',
        numExamples: h.numExamples,
        seconds: (Date.now() - inv.sentAt) / 1000,
        metrics: h.metrics,
        baseVersion: inv.baseVersion,
        staleness,
        weight,
        ...(inv.task.round !== round.round && !isAsync ? { reason: `late result from round ${inv.task.round}` } : {}),
        ...this.lineage(h.agentId),
      };
      round.resolve(key, p, { agentId: h.agentId, numExamples: h.numExamples, weight, metrics: h.metrics, baseVersion: inv.baseVersion });
      if (!isAsync && inv.task.round !== round.round) this.noteLateOutcome(inv, `folded into round ${round.round} (staleness ${staleness})`);
      this.noteEval(inv.baseVersion, h.metrics);
      // Cut before releasing the agent: the release re-dispatches it, and it must get the new version.
      if (isAsync && round.accepted.length >= this.config.async.bufferSize) this.cutAsyncVersion();
      this.deps.registry.release(h.agentId, inv.task.taskId, true);
      this.refreshLive();
      if (isAsync) queueMicrotask(() => this.fillAsync());
    };
    // Compressed payloads are unpacked chunk by chunk straight into the slot; float32 bytes are copied in as they are.
    const decoder = slot && h.kind === 'train' ? createDecoder(h.encoding, h.totalBytes, slot.view) : undefined;
    const sink = new StagedUpload(h.totalBytes, slot, decoder, {
      isOpen: () => (isAsync ? this.outstanding.get(h.agentId) === inv && !this.done : !!target()?.open && !inv.participant),
      release: (s) => this.agg.release(s),
      onComplete: (s) => {
        if (!isAsync || !this.deps.spool) return complete(s);
        // One commit at a time, after the last cut is durable: the saved buffer always matches the accumulator.
        const work = this.asyncCommits.then(async () => {
          await this.cutPersisted;
          await complete(s);
        });
        this.asyncCommits = work.catch(() => undefined);
        return work;
      },
      onReject: (reason, message) =>
        isAsync ? this.asyncFailure(inv, 'rejected', `${reason}: ${message}`) : this.failParticipant(target()!, h.agentId, reason, message),
      onAbort: (reason) => {
        if (isAsync) this.asyncFailure(inv, 'dropped', `upload aborted: ${reason}`);
        else if (!inv.participant && target()?.open) this.failParticipant(target()!, h.agentId, 'upload_aborted', `upload aborted: ${reason}`, 'dropped');
      },
    });
    inv.abortUpload = (why) => sink.abort(why);
    return sink;
  }

  private failParticipant(round: OpenRound, agentId: string, reason: string, message: string, outcome: 'rejected' | 'dropped' = 'rejected'): void {
    const inv = round.invitees.get(agentId);
    if (!inv || inv.participant) return;
    this.log.warn({ agentId, name: inv.agent.name, round: round.round, reason, message }, 'result rejected');
    round.resolve(agentId, { agentId, name: inv.agent.name, outcome, reason: `${reason}: ${message}` });
    this.deps.registry.release(agentId, inv.task.taskId, false);
    // The agent may still be training or uploading; tell it to stop so it is free for the next round.
    if (outcome === 'rejected') this.deps.registry.cancel(agentId, inv.task);
    this.refreshLive();
  }

  /** Updates the recorded reason of a late participant in the round it was invited to. */
  private noteLateOutcome(inv: Invitee, what: string): void {
    this.ctx.noteLateOutcome(inv.task.round, inv.agent.id, what);
  }

  private dropOutstanding(id: string, inv: Invitee, why: string): void {
    this.outstanding.delete(id);
    this.deps.registry.cancel(id, inv.task);
    this.noteLateOutcome(inv, why);
  }

  private cancelOutstanding(why: string): void {
    for (const [id, inv] of this.outstanding) this.dropOutstanding(id, inv, why);
  }

  // ---------------------------------------------------------------- versions and records

  private aggView() {
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

  /** Makes `weights` the next global version, registers and evaluates it. */
  private async publishVersion(weights: Float32Array, record: RoundRecord): Promise<void> {
    const next = makeGlobalModel(this.run.id, this.global.version + 1, { ...this.global.blob, weights });
    this.setGlobal(next);
    record.version = next.version;
    await this.registerVersion(next, record.round);
    await this.evaluateVersion(next, record);
  }

  private async evaluateVersion(next: GlobalModel, record: RoundRecord): Promise<void> {
    if (!this.deps.evaluateCentral || !this.config.centralEvaluation) return;
    if (this.config.mode === 'sync') {
      this.live = { ...this.live, phase: 'evaluating' };
      this.emitUpdate();
    }
    const ev = await this.deps.evaluateCentral(next.blob);
    const metrics = { ...(ev.metrics ? this.pick(ev.metrics) : {}), ...(Number.isFinite(ev.accuracy) && !ev.metrics ? { accuracy: ev.accuracy } : {}) };
    record.centralLoss = ev.loss;
    if (Number.isFinite(ev.accuracy)) record.centralAccuracy = ev.accuracy;
    record.centralMetrics = metrics;
    this.ctx.setCentral(next.version, { loss: ev.loss, accuracy: ev.accuracy, metrics });
    this.checkTarget(next.version, record.round, { loss: ev.loss, accuracy: ev.accuracy, ...metrics });
  }

  /** Data lineage: the fingerprint of the dataset the agent trained on, as it reported it when it joined. */
  private lineage(agentId: string): { fingerprint?: string } {
    const f = this.run.data ? this.deps.registry.profile(agentId)?.fingerprint : undefined;
    return f ? { fingerprint: f } : {};
  }

  /** The task's metrics (and loss) out of an evaluation's, dropping sufficient statistics. */
  private pick(m: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of ['loss', ...this.metricNames]) if (m[k] !== undefined && Number.isFinite(m[k])) out[k] = m[k];
    return out;
  }

  /** stopAt (or targetAccuracy): ends the run once a version's metric reaches the value, from the side the metric implies. */
  private checkTarget(version: number, round: number, metrics: Record<string, number>): void {
    const rule = this.stopAt;
    const value = rule ? metrics[rule.metric] : undefined;
    if (!rule || this.targetHit || value === undefined || !Number.isFinite(value)) return;
    if (rule.lowerIsBetter ? value > rule.value : value < rule.value) return;
    this.targetHit = true;
    const started = this.run.startedAt ? Date.parse(this.run.startedAt) : Date.now();
    this.ctx.reachTarget({ version, round, accuracy: metrics.accuracy ?? Number.NaN, seconds: (Date.now() - started) / 1000, metric: rule.metric, value });
    this.log.info({ version, metric: rule.metric, value, target: rule.value }, 'stop target reached');
    this.asyncStep?.resolve();
  }

  private async finishRecord(record: RoundRecord, round: OpenRound): Promise<void> {
    // Participants may have been resolved after the record was drafted (async failures); take the final list.
    record.participants = round.participants();
    if (round.failures.length) record.reason ??= summarizeFailures(round.failures);
    this.ctx.recordRound(record, this.global.version);
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
      this.config.mode === 'async' ? 'version published' : 'round ended',
    );
    await this.persist();
  }

  private roundRecord(round: OpenRound): RoundRecord {
    const ended = new Date();
    const entries = round.accepted.map((a) => ({ weight: a.numExamples, metrics: a.metrics }));
    const rec: RoundRecord = {
      round: round.round,
      baseVersion: round.baseVersion,
      status: 'completed',
      startedAt: round.startedAt.toISOString(),
      endedAt: ended.toISOString(),
      seconds: (ended.getTime() - round.startedAt.getTime()) / 1000,
      participants: round.participants(),
      bytesReceived: round.bytesReceived,
      bytesSent: round.bytesSent,
      stalenessHistogram: stalenessHistogram(round.accepted.map((a) => round.baseVersion - (a.baseVersion ?? round.baseVersion))),
    };
    const tl = weightedMetric(entries, 'train_loss');
    const ta = weightedMetric(entries, 'train_accuracy');
    if (tl !== undefined) rec.trainLoss = tl;
    if (ta !== undefined) rec.trainAccuracy = ta;
    if (this.run.data) {
      const tm = combineMetrics(round.accepted.map((a) => ({ n: a.numExamples, metrics: stripPrefix(a.metrics, 'train_') })), this.metricTask);
      if (Object.keys(tm).length) rec.trainMetrics = tm;
    }
    if (round.failures.length) rec.reason = summarizeFailures(round.failures);
    return rec;
  }

  /**
   * Agents evaluate the model they received before training: those metrics belong to the version they trained
   * from, so they are accumulated per version and shown on the round that produced it.
   */
  private noteEval(version: number, m: Record<string, number>): void {
    const n = m.eval_examples ?? 0;
    if (!(n > 0) || m.eval_loss === undefined) return;
    const parts = this.evalParts.get(version) ?? [];
    parts.push({ n, metrics: stripPrefix(m, 'eval_') });
    this.evalParts.set(version, parts);
    const combined = combineMetrics(parts, this.metricTask);
    const examples = parts.reduce((s, p) => s + p.n, 0);
    const rec = this.ctx.setFederated(version, combined, examples);
    if (!this.config.centralEvaluation || !this.deps.evaluateCentral) this.checkTarget(version, rec?.round ?? 0, combined);
  }

  private setGlobal(g: GlobalModel): void {
    this.global = g;
    this.versions.set(g.version, g);
    // Keep recent versions for agents still downloading or training on them; older ones live in the store.
    const keep = this.config.mode === 'async' ? this.config.async.maxStaleness + 1 : 2;
    for (const v of this.versions.keys()) if (v <= g.version - keep) this.versions.delete(v);
  }

  private async registerVersion(g: GlobalModel, round: number): Promise<void> {
    await this.deps.store.putModel(g.sha256, g.blob);
    // The strategy state that made this version (DP steps) is durable before the version is released.
    await this.ctx.persistStrategyState();
    // Serving agents hot-swap every new version: tell the online ones it exists (run, version, sha256). Once the
    // run has a promotion (fedge model promote), they follow promotions only (Coordinator.promoteModel announces).
    if (g.version > 0 && !this.run.promotion) this.deps.registry.announce(this.tasks.announce(g, round));
    this.ctx.publishVersion(g, round);
  }

  private refreshLive(): void {
    const round = this.current;
    if (this.config.mode === 'async' && round) {
      this.live = {
        phase: 'training',
        round: round.round,
        participants: [...this.outstanding.values()].map((i) => ({ agentId: i.agent.id, name: i.agent.name, state: i.state })),
        buffered: round.accepted.length,
        inFlight: this.outstanding.size,
      };
    } else if (round) this.live = { ...this.live, participants: round.live() };
    this.emitUpdate();
  }

  private emitUpdate(): void {
    this.emit('update', this.run, this.live);
  }

  private async persist(): Promise<void> {
    await this.ctx.persist();
    this.emitUpdate();
  }
}
