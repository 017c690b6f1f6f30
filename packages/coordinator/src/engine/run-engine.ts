/** Drives one run: synchronous FedAvg rounds over numbered global versions, streaming aggregation, failures as data. */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  RejectedUpdateError,
  UPDATE_ENCODING,
  describeSpecMismatch,
  totalParams,
  type ModelBlob,
  type ResultHeaderMsg,
  type TaskMsg,
  type TensorSpec,
} from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import type { RoundRecord, RunRecord, Store } from '../store/store.js';
import type { Strategy } from '../strategy/strategy.js';
import { weightedMetric, summarizeFailures } from '../strategy/fedavg.js';
import { StreamingFedAvg } from '../strategy/aggregate.js';
import type { AgentRegistry } from './agent-registry.js';
import { makeGlobalModel, type GlobalModel } from './global-model.js';
import { OpenRound } from './round.js';
import { StagedUpload, type UploadSink } from './upload.js';
import { createRng } from './rng.js';
import { moduleLogger, type Logger } from '../log.js';

export interface RunEngineDeps {
  store: Store;
  registry: AgentRegistry;
  strategy: Strategy;
  /** Central evaluation of a global model on a test set the coordinator holds (optional). */
  evaluateCentral?: (blob: ModelBlob) => Promise<{ loss: number; accuracy: number }>;
  /** Persists the final model for users; returns the path. */
  saveFinalModel?: (run: RunRecord, blob: ModelBlob) => Promise<string>;
}

export interface LiveView {
  phase: 'waiting' | 'training' | 'aggregating' | 'evaluating' | 'done';
  round: number;
  deadline?: number;
  participants: { agentId: string; name: string; state: string }[];
}

/** Reasons that a metric reported by an agent cannot be trusted. */
function checkMetrics(metrics: Record<string, number>): void {
  for (const [k, v] of Object.entries(metrics))
    if (!Number.isFinite(v)) throw new RejectedUpdateError('non_finite_metric', `metrics.${k}: must be a finite number, got ${v}`);
}

export class RunEngine extends EventEmitter<{ update: [RunRecord, LiveView]; end: [RunRecord] }> {
  readonly run: RunRecord;
  private global!: GlobalModel;
  private readonly versions = new Map<number, GlobalModel>();
  private current: OpenRound | undefined;
  private readonly agg: StreamingFedAvg;
  private readonly stopCtl = new AbortController();
  private readonly log: Logger;
  private readonly specs: TensorSpec[];
  private readonly rng: () => number;
  live: LiveView = { phase: 'waiting', round: 0, participants: [] };

  constructor(run: RunRecord, initial: ModelBlob, private readonly deps: RunEngineDeps) {
    super();
    this.run = run;
    this.log = moduleLogger('run').child({ runId: run.id });
    this.specs = initial.tensors;
    this.setGlobal(makeGlobalModel(run.id, run.modelVersion, initial));
    // Two staging slots bound memory to (1 accumulator + 2 updates) whatever the number of agents.
    this.agg = StreamingFedAvg.create(totalParams(initial.tensors), { slots: 2 });
    this.rng = createRng(run.config.seed);
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
    this.run.statusMessage = reason;
    this.stopCtl.abort(new Error(reason));
    this.current?.close('stopped');
  }

  isFinished(): boolean {
    return ['completed', 'failed', 'stopped'].includes(this.run.status);
  }

  /** Runs every round; resolves when the run ends (never rejects: failures end up in the run record). */
  async execute(): Promise<RunRecord> {
    const c = this.config;
    try {
      this.run.startedAt = new Date().toISOString();
      await this.registerVersion(this.global, 0);
      await this.evaluateInitial();
      for (let r = this.run.round + 1; r <= c.rounds; r++) {
        await this.waitForAgents(r);
        if (this.stopCtl.signal.aborted) break;
        await this.trainRound(r);
      }
      if (!this.stopCtl.signal.aborted) await this.finalEvaluation();
      if (this.stopCtl.signal.aborted) this.run.status = 'stopped';
      else {
        this.run.status = 'completed';
        this.run.statusMessage = `completed ${this.run.rounds.filter((x) => x.status === 'completed').length} of ${c.rounds} rounds`;
      }
    } catch (err) {
      if (this.stopCtl.signal.aborted) this.run.status = 'stopped';
      else {
        this.run.status = 'failed';
        this.run.statusMessage = err instanceof Error ? err.message : String(err);
        this.log.error({ err }, 'run failed');
      }
    } finally {
      this.agg.dispose();
    }
    try {
      if (this.deps.saveFinalModel) this.run.modelPath = await this.deps.saveFinalModel(this.run, this.global.blob);
    } catch (err) {
      this.log.error({ err }, 'saving the final model failed');
    }
    this.run.endedAt = new Date().toISOString();
    this.live = { phase: 'done', round: this.run.round, participants: [] };
    await this.persist();
    this.log.info({ status: this.run.status, version: this.global.version, message: this.run.statusMessage }, 'run ended');
    this.emit('end', this.run);
    return this.run;
  }

  /** Central accuracy of version 0, so every run shows where training started from. */
  private async evaluateInitial(): Promise<void> {
    if (!this.deps.evaluateCentral || !this.config.centralEvaluation || this.run.round > 0) return;
    const ev = await this.deps.evaluateCentral(this.global.blob);
    const v0 = this.run.versions.find((v) => v.version === 0);
    if (v0) {
      v0.centralLoss = ev.loss;
      v0.centralAccuracy = ev.accuracy;
    }
  }

  private async waitForAgents(round: number): Promise<void> {
    const need = this.config.agentsPerRound.min;
    if (this.deps.registry.available().length >= need) return;
    this.run.status = 'waiting';
    this.run.statusMessage = `waiting for ${need} available agents (${this.deps.registry.available().length} now)`;
    this.live = { phase: 'waiting', round, participants: [] };
    this.log.info({ need }, this.run.statusMessage);
    await this.persist();
    const timeout = AbortSignal.timeout(this.config.waitForAgentsSeconds * 1000);
    try {
      await this.deps.registry.waitForAvailable(need, AbortSignal.any([this.stopCtl.signal, timeout]));
    } catch (err) {
      if (this.stopCtl.signal.aborted) return;
      throw new Error(`no round could start: fewer than ${need} agents were available for ${this.config.waitForAgentsSeconds}s (agentsPerRound.min)`, { cause: err });
    }
  }

  private async trainRound(r: number): Promise<void> {
    const c = this.config;
    this.run.status = 'running';
    this.run.statusMessage = `round ${r}/${c.rounds}`;
    const chosen = this.deps.strategy.selectAgents(this.deps.registry.available(), this.rng);
    const round = this.openRound(r, 'train', chosen, c.roundDeadlineSeconds);
    this.log.info({ round: r, agents: chosen.map((a) => a.name), baseVersion: round.baseVersion }, 'round started');
    await round.settled;
    round.close('deadline'); // idempotent; marks stragglers if the deadline fired first
    this.current = undefined;

    this.live = { ...this.live, phase: 'aggregating' };
    const t0 = performance.now();
    const outcome = this.deps.strategy.aggregate(this.global.blob.weights, this.aggView(), round.accepted, round.failures);
    const aggregationMs = performance.now() - t0;
    const record = this.roundRecord(round);
    record.aggregationMs = aggregationMs;
    this.attachFederatedEval(round);

    if (outcome.ok) {
      const next = makeGlobalModel(this.run.id, this.global.version + 1, { ...this.global.blob, weights: outcome.weights });
      this.setGlobal(next);
      record.version = next.version;
      await this.registerVersion(next, r);
      const rec = this.run.versions.find((v) => v.version === next.version);
      if (this.deps.evaluateCentral && c.centralEvaluation) {
        this.live = { ...this.live, phase: 'evaluating' };
        this.emitUpdate();
        const ev = await this.deps.evaluateCentral(next.blob);
        record.centralLoss = ev.loss;
        record.centralAccuracy = ev.accuracy;
        if (rec) Object.assign(rec, { centralLoss: ev.loss, centralAccuracy: ev.accuracy });
      }
    } else {
      record.status = 'failed';
      record.reason = outcome.reason;
      this.log.warn({ round: r, reason: outcome.reason }, 'round produced no new model');
    }
    this.run.rounds.push(record);
    this.run.round = r;
    this.run.modelVersion = this.global.version;
    this.log.info(
      {
        round: r,
        version: record.version,
        completed: round.accepted.length,
        failed: round.failures.length,
        trainLoss: record.trainLoss,
        centralAccuracy: record.centralAccuracy,
        seconds: record.seconds,
      },
      'round ended',
    );
    await this.persist();
  }

  /** Asks agents to evaluate the final model so the last round gets federated metrics too. */
  private async finalEvaluation(): Promise<void> {
    const last = this.run.rounds.at(-1);
    if (!last?.version) return;
    const chosen = this.deps.strategy.selectAgents(this.deps.registry.available(), this.rng);
    if (chosen.length === 0) return;
    const round = this.openRound(last.round, 'evaluate', chosen, Math.min(this.config.roundDeadlineSeconds, 300));
    await round.settled;
    round.close('deadline');
    this.current = undefined;
    this.attachFederatedEval(round);
    await this.persist();
  }

  private openRound(r: number, kind: 'train' | 'evaluate', chosen: { id: string; name: string; numExamples: number }[], deadlineSeconds: number): OpenRound {
    this.agg.reset();
    const deadline = Date.now() + deadlineSeconds * 1000;
    const round = new OpenRound(r, kind, this.global.version, deadline);
    this.current = round;
    const timer = setTimeout(() => round.close('deadline'), deadlineSeconds * 1000);
    void round.settled.then(() => clearTimeout(timer));
    const c = this.config;
    chosen.forEach((agent, i) => {
      const task: TaskMsg = {
        taskId: `${this.run.id}.${kind}.${r}.${randomUUID().slice(0, 8)}`,
        runId: this.run.id,
        round: r,
        modelVersion: this.global.version,
        kind,
        modelSha256: this.global.sha256,
        modelBytes: this.global.bytes.byteLength,
        config: { epochs: c.epochs, batchSize: c.batchSize, learningRate: c.learningRate, seed: c.seed * 7919 + r * 101 + i },
        deadlineUnixMs: deadline,
      };
      round.invitees.set(agent.id, { agent, task, state: 'invited', sentAt: Date.now() });
      if (!this.deps.registry.assign(agent.id, task))
        round.resolve(agent.id, { agentId: agent.id, name: agent.name, outcome: 'dropped', reason: 'agent unavailable when the task was sent' });
    });
    if (chosen.length === 0) round.close('deadline');
    this.live = { phase: kind === 'train' ? 'training' : 'evaluating', round: r, deadline, participants: round.live() };
    this.emitUpdate();
    return round;
  }

  /** Called by the coordinator when an agent disconnects: its pending task fails, the round goes on. */
  agentGone(agentId: string, reason: string): void {
    const round = this.current;
    const inv = round?.invitees.get(agentId);
    if (!round || !inv || inv.participant) return;
    inv.abortUpload?.('disconnected');
    round.resolve(agentId, { agentId, name: inv.agent.name, outcome: 'dropped', reason: `disconnected: ${reason}` });
    this.deps.registry.release(agentId, inv.task.taskId, false);
    this.refreshLive(round);
  }

  /** Records a model download so the round's bytes-on-the-wire figure is right. */
  noteModelSent(bytes: number): void {
    if (this.current) this.current.bytesSent += bytes;
  }

  /**
   * Validates a result header against the open round and returns a sink for its payload.
   * Throws RejectedUpdateError for anything that cannot be accepted; that is recorded as the agent's failure.
   */
  async beginUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    const round = this.current;
    const inv = round?.invitees.get(h.agentId);
    const reject = (reason: string, message: string): never => {
      if (round && inv && !inv.participant) this.failParticipant(round, h.agentId, reason, message);
      throw new RejectedUpdateError(reason, message);
    };
    if (!round || !round.open || h.round !== round.round)
      throw new RejectedUpdateError('stale_round', `round: ${h.round} is not open (current: ${round?.open ? round.round : 'none'})`);
    if (!inv) throw new RejectedUpdateError('not_invited', `agent ${h.agentId} was not selected for round ${round.round}`);
    if (inv.participant) throw new RejectedUpdateError('duplicate', `a result for this task was already recorded (${inv.participant.outcome})`);
    if (h.taskId !== inv.task.taskId) reject('unknown_task', `task_id: "${h.taskId}" is not the task sent for this round`);
    if (h.kind !== round.kind) reject('wrong_kind', `kind: expected ${round.kind}, got ${h.kind}`);
    if (h.modelVersion !== round.baseVersion)
      reject('wrong_model_version', `model_version: expected ${round.baseVersion}, got ${h.modelVersion}`);
    try {
      checkMetrics(h.metrics);
    } catch (err) {
      reject((err as RejectedUpdateError).reason, (err as Error).message);
    }
    let slot;
    if (round.kind === 'train') {
      if (h.encoding !== UPDATE_ENCODING) reject('bad_encoding', `encoding: expected "${UPDATE_ENCODING}", got "${h.encoding}"`);
      const mismatch = describeSpecMismatch(this.specs, h.tensors as TensorSpec[]);
      if (mismatch) reject(mismatch.includes('dtype') ? 'wrong_dtype' : 'wrong_shape', mismatch);
      const expected = this.global.bytes.byteLength;
      if (h.totalBytes !== expected) reject('size_mismatch', `total_bytes: expected ${expected}, got ${h.totalBytes}`);
      if (h.numExamples < 1) reject('no_examples', 'num_examples: must be at least 1 for a training result');
      inv.state = 'uploading';
      this.refreshLive(round);
      // Waits for a staging slot: this is what keeps memory flat however many agents upload at once.
      const ctl = new AbortController();
      inv.abortUpload = (why) => ctl.abort(new RejectedUpdateError('round_closed', why));
      slot = await this.agg.acquire(ctl.signal);
      if (!round.open || inv.participant) {
        this.agg.release(slot);
        throw new RejectedUpdateError('round_closed', 'the round closed while the upload waited');
      }
    } else if (h.totalBytes !== 0) reject('size_mismatch', `total_bytes: an evaluation result carries no payload, got ${h.totalBytes}`);

    const started = Date.now();
    let sink!: StagedUpload;
    sink = new StagedUpload(h.totalBytes, slot, {
      isOpen: () => round.open && !inv.participant,
      release: (s) => this.agg.release(s),
      onComplete: (s) => {
        if (s) {
          const bad = this.agg.firstNonFinite(s);
          if (bad >= 0) throw new RejectedUpdateError('non_finite', `update contains NaN or Infinity (first at parameter ${bad})`);
          this.agg.fold(s, this.deps.strategy.weightOf(h.numExamples));
        }
        round.bytesReceived += h.totalBytes;
        const p = {
          agentId: h.agentId,
          name: inv.agent.name,
          outcome: 'completed' as const,
          numExamples: h.numExamples,
          seconds: (Date.now() - inv.sentAt) / 1000,
          metrics: h.metrics,
        };
        round.resolve(h.agentId, p, { agentId: h.agentId, numExamples: h.numExamples, weight: h.numExamples, metrics: h.metrics });
        this.deps.registry.release(h.agentId, inv.task.taskId, true);
        this.log.debug({ agentId: h.agentId, round: round.round, ms: Date.now() - started }, 'result accepted');
        this.refreshLive(round);
      },
      onReject: (reason, message) => this.failParticipant(round, h.agentId, reason, message),
      onAbort: (reason) => {
        if (!inv.participant && round.open)
          this.failParticipant(round, h.agentId, 'upload_aborted', `upload aborted: ${reason}`, 'dropped');
      },
    });
    inv.abortUpload = (why) => sink.abort(why);
    return sink;
  }

  /** Rejects an agent's current task (used when its result header could not even be parsed). */
  rejectTask(agentId: string, taskId: string, reason: string, message: string): void {
    const round = this.current;
    const inv = round?.invitees.get(agentId);
    if (round && inv && inv.task.taskId === taskId) this.failParticipant(round, agentId, reason, message);
  }

  private failParticipant(round: OpenRound, agentId: string, reason: string, message: string, outcome: 'rejected' | 'dropped' = 'rejected'): void {
    const inv = round.invitees.get(agentId);
    if (!inv || inv.participant) return;
    this.log.warn({ agentId, name: inv.agent.name, round: round.round, reason, message }, 'result rejected');
    round.resolve(agentId, { agentId, name: inv.agent.name, outcome, reason: `${reason}: ${message}` });
    this.deps.registry.release(agentId, inv.task.taskId, false);
    // The agent may still be training or uploading; tell it to stop so it is free for the next round.
    if (outcome === 'rejected') this.deps.registry.cancel(agentId, inv.task);
    this.refreshLive(round);
  }

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
    };
    const tl = weightedMetric(entries, 'train_loss');
    const ta = weightedMetric(entries, 'train_accuracy');
    if (tl !== undefined) rec.trainLoss = tl;
    if (ta !== undefined) rec.trainAccuracy = ta;
    if (round.failures.length) rec.reason = summarizeFailures(round.failures);
    return rec;
  }

  /** Agents evaluate the model they received before training: those metrics belong to the round that produced it. */
  private attachFederatedEval(round: OpenRound): void {
    const target = this.run.rounds.find((x) => x.version === round.baseVersion && x.version !== undefined);
    if (!target) return;
    const entries = round.accepted
      .filter((a) => (a.metrics.eval_examples ?? 0) > 0)
      .map((a) => ({ weight: a.metrics.eval_examples!, metrics: a.metrics }));
    const loss = weightedMetric(entries, 'eval_loss');
    const acc = weightedMetric(entries, 'eval_accuracy');
    if (loss !== undefined) target.federatedLoss = loss;
    if (acc !== undefined) target.federatedAccuracy = acc;
    if (entries.length) target.federatedExamples = entries.reduce((s, e) => s + e.weight, 0);
  }

  private setGlobal(g: GlobalModel): void {
    this.global = g;
    this.versions.set(g.version, g);
    // Keep the current and previous versions for agents still downloading; older ones live in the store.
    for (const v of this.versions.keys()) if (v < g.version - 1) this.versions.delete(v);
  }

  private async registerVersion(g: GlobalModel, round: number): Promise<void> {
    await this.deps.store.putModel(g.sha256, g.blob);
    if (!this.run.versions.some((v) => v.version === g.version)) {
      this.run.versions.push({
        version: g.version,
        sha256: g.sha256,
        round,
        ...(g.version > 0 ? { parent: g.version - 1 } : {}),
        createdAt: new Date().toISOString(),
      });
    }
  }

  private refreshLive(round: OpenRound): void {
    if (this.current === round) this.live = { ...this.live, participants: round.live() };
    this.emitUpdate();
  }

  private emitUpdate(): void {
    this.emit('update', this.run, this.live);
  }

  private async persist(): Promise<void> {
    await this.deps.store.saveRun(this.run);
    this.emitUpdate();
  }
}
