/** The async driver (FedBuff): agents train continuously; every K accepted updates make a new version. */
import { RejectedUpdateError, type ResultHeaderMsg } from '@fedge/proto';
import { autoBufferSize, bufferSizeOf, SPEED_WEIGHT_MAX } from '../config/run-config.js';
import type { UpdateSlot } from '../strategy/aggregate.js';
import { sampleAgents } from '../strategy/fedavg.js';
import { stalenessWeight } from '../strategy/staleness.js';
import { accepted, acquireSlot, admitUpdate, checkHeader, openSink, scaledNote, type Reject } from './intake.js';
import { OpenRound, type Invitee } from './round.js';
import type { DriverTraits, LiveView, RunCore } from './run-core.js';
import type { Participant } from '../store/store.js';
import type { UploadSink } from './upload.js';

export class AsyncBuffer {
  static traits(c: { async: { maxStaleness: number } }): DriverTraits {
    return { keepVersions: c.async.maxStaleness + 1, unit: 'aggregation steps', published: 'version published', showEvaluating: false };
  }

  private step: { done: Promise<void>; resolve: () => void } | undefined;
  private filling = false;
  /** With a spool: commits run one at a time (spool, persist, fold, maybe cut) so the saved buffer matches the accumulator. */
  private commits: Promise<void> = Promise.resolve();
  /** With a spool: resolves once the last cut version and its record are durable; the next buffer waits for it. */
  private cutPersisted: Promise<void> = Promise.resolve();

  /** Each agent's last task time (seconds from dispatch to its result), for async.speedWeighting. */
  private readonly taskSeconds = new Map<string, number>();

  constructor(private readonly core: RunCore) {
    core.wake = () => this.step?.resolve();
    core.liveOverride = () => this.live();
  }

  private get bufferSize(): number {
    return bufferSizeOf(this.core.config);
  }

  /**
   * async.bufferSize "auto" becomes a number when the run starts, from the concurrency (or the agents available then,
   * at least agentsPerRound.min), and is written into the run's config: a resumed run keeps its K.
   */
  private chooseBufferSize(): void {
    const { core } = this;
    const c = core.config;
    if (c.async.bufferSize !== 'auto') return;
    const from = c.async.concurrency ?? Math.max(c.agentsPerRound.min, core.deps.registry.available(core.deps.eligible).length);
    const k = autoBufferSize(from);
    core.ctx.chooseBufferSize(k);
    core.log.info({ bufferSize: k, from, concurrency: c.async.concurrency ?? 'all available agents' }, 'async.bufferSize auto: K chosen');
  }

  /** Runs steps after the last saved one until the run is done (rounds, stop target, privacy budget or stop). */
  async run(): Promise<void> {
    const { core } = this;
    core.ctx.setStatus('running');
    this.chooseBufferSize();
    // Steps continue from the last persisted one after a restart.
    core.current = new OpenRound(core.run.round + 1, 'train', core.globalModel.version, Infinity, this.bufferSize);
    core.agg.reset();
    this.checkPrivacyBudget(core.run.round + 1);
    if (core.deps.spool) await this.restore(core.current);
    const fill = (): void => this.fill();
    core.deps.registry.on('changed', fill);
    try {
      while (!core.done && core.run.rounds.length < core.config.rounds) {
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        this.step = { done, resolve };
        this.fill();
        await done;
      }
      // A step that ends the run (privacy budget, target) may still be saving its version and record: wait for it.
      await this.cutPersisted;
    } finally {
      core.deps.registry.off('changed', fill);
      this.step = undefined;
      core.current = undefined;
    }
  }

  /** Keeps `concurrency` agents training on the newest version. */
  private fill(): void {
    const { core } = this;
    if (this.filling || core.done || !core.current) return;
    this.filling = true;
    try {
      const limit = core.config.async.concurrency ?? Infinity;
      // Under DP an agent contributes at most once to a buffer: its sensitivity bound is per step.
      const contributed = core.strategy.privacy ? new Set(core.current.accepted.map((a) => a.agentId)) : undefined;
      const free = sampleAgents(
        core.deps.registry.available(core.deps.eligible).filter((a) => !core.outstanding.has(a.id) && !contributed?.has(a.id)),
        1,
        0,
        core.rng,
      );
      for (const agent of free) {
        if (core.outstanding.size >= limit) break;
        const deadline = Date.now() + core.config.roundDeadlineSeconds * 1000;
        const task = core.tasks.round('train', core.globalModel, core.current.round, core.outstanding.size, deadline, agent.name);
        const inv: Invitee = { agent, task, state: 'invited', sentAt: Date.now(), baseVersion: core.globalModel.version };
        core.outstanding.set(agent.id, inv);
        if (!core.deps.registry.assign(agent.id, task)) {
          core.outstanding.delete(agent.id);
          continue;
        }
        setTimeout(() => {
          if (core.outstanding.get(agent.id) === inv) this.failure(inv, 'late', `no result within roundDeadlineSeconds (${core.config.roundDeadlineSeconds}s)`);
        }, core.config.roundDeadlineSeconds * 1000).unref();
      }
    } finally {
      this.filling = false;
    }
    core.refreshLive();
  }

  /** Records an async task's failure in the buffer being filled and frees the agent. */
  private failure(inv: Invitee, outcome: 'late' | 'dropped' | 'rejected', reason: string): void {
    const { core } = this;
    if (core.outstanding.get(inv.agent.id) !== inv) return;
    core.outstanding.delete(inv.agent.id);
    inv.abortUpload?.(reason);
    if (outcome === 'dropped') core.deps.registry.release(inv.agent.id, inv.task.taskId, false);
    else core.deps.registry.cancel(inv.agent.id, inv.task);
    const buf = core.current;
    if (buf) {
      buf.addExtra({ ...inv, state: 'invited' }, inv.task.taskId);
      buf.resolve(inv.task.taskId, { agentId: inv.agent.id, name: inv.agent.name, outcome, reason, baseVersion: inv.baseVersion });
    }
    core.log.warn({ agentId: inv.agent.id, name: inv.agent.name, outcome, reason }, 'async task failed');
    queueMicrotask(() => this.fill());
  }

  /** Cuts a new version from exactly K folded updates; runs synchronously inside the K-th commit. */
  private cut(): void {
    const { core } = this;
    const buf = core.current!;
    buf.open = false;
    const t0 = performance.now();
    // The FedBuff step is the strategy's (FedAvg: staleness-weighted sum over the buffer's examples; DP: noised sum / K).
    const out = core.strategy.aggregateBuffered(core.globalModel.blob.weights, core.aggView(), buf.accepted, buf.failures);
    const weights = out.ok ? out.weights : core.globalModel.blob.weights;
    core.agg.reset();
    const record = core.roundRecord(buf);
    record.aggregationMs = performance.now() - t0;
    core.recordSpent(record);
    this.checkPrivacyBudget(buf.round + 1);
    // The new version exists before anything else is committed, so later updates see their true staleness.
    const next = core.nextVersion(weights);
    record.version = next.version;
    core.current = new OpenRound(buf.round + 1, 'train', next.version, Infinity, this.bufferSize);
    const spool = core.deps.spool;
    if (spool) core.ctx.setOpenRound({ round: buf.round + 1, baseVersion: next.version, invitees: [], accepted: [] });
    this.cutPersisted = (async () => {
      await core.registerVersion(next, buf.round);
      await core.evaluateVersion(next, record);
      // Saves the version's record together with the next (empty) buffer; then this buffer's spool can go.
      await core.finishRecord(record, buf);
      spool?.removeRound(core.run.id, buf.round);
      if (core.run.rounds.length >= core.config.rounds || core.metrics.targetHit || core.privacyStop) this.step?.resolve();
    })().catch((err: unknown) => core.log.error({ err }, 'finishing a version failed'));
    this.fill();
  }

  /** After a restart: folds the persisted buffer's updates back in (nothing accepted is lost); else starts one. */
  private async restore(buf: OpenRound): Promise<void> {
    const { core } = this;
    const saved = core.run.openRound;
    if (saved && saved.round === buf.round && saved.baseVersion === buf.baseVersion && saved.accepted.length > 0) {
      for (const [i, e] of saved.accepted.entries()) {
        await core.spools.foldFromSpool(e.file, e.weight);
        const key = `restored-${i}`;
        const agent = { id: key, name: e.name, numExamples: e.numExamples };
        buf.addExtra({ agent, task: { ...core.tasks.round('train', core.globalModel, buf.round, 0, 0), taskId: key }, state: 'invited', sentAt: Date.now(), baseVersion: e.baseVersion }, key);
        buf.resolve(key, { agentId: key, name: e.name, outcome: 'completed', numExamples: e.numExamples, seconds: e.seconds, metrics: e.metrics, baseVersion: e.baseVersion, staleness: e.staleness, weight: e.weight, reason: 'accepted before a coordinator restart' },
          { agentId: key, numExamples: e.numExamples, weight: e.weight, metrics: e.metrics, baseVersion: e.baseVersion });
      }
      core.log.info({ step: buf.round, restored: saved.accepted.length }, 'async buffer restored after restart');
      if (buf.accepted.length >= this.bufferSize) this.cut();
      return;
    }
    core.ctx.setOpenRound({ round: buf.round, baseVersion: buf.baseVersion, invitees: [], accepted: [] });
    await core.ctx.persist();
  }

  /**
   * async.speedWeighting: this task's time over the median of every agent's last task time, in [1, SPEED_WEIGHT_MAX].
   * The median is over agents, not tasks, so the many fast agents' tasks do not set it alone; 1 under DP.
   */
  private speedFactor(agentId: string, seconds: number): number {
    this.taskSeconds.set(agentId, seconds);
    if (!this.core.config.async.speedWeighting || this.core.strategy.privacy) return 1;
    const times = [...this.taskSeconds.values()].sort((a, b) => a - b);
    const mid = times.length >> 1;
    const median = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
    return median > 0 ? Math.min(SPEED_WEIGHT_MAX, Math.max(1, seconds / median)) : 1;
  }

  /** Stops dispatching before the step that would exceed privacy.maxEpsilon. */
  private checkPrivacyBudget(step: number): void {
    const { core } = this;
    const stop = core.strategy.privacy?.budgetStop(step);
    if (!stop || core.privacyStop) return;
    core.privacyStop = stop;
    core.log.info({ step }, stop);
    this.step?.resolve();
  }

  private live(): LiveView | undefined {
    const { core } = this;
    const round = core.current;
    if (!round) return undefined;
    return {
      phase: 'training',
      round: round.round,
      participants: [...core.outstanding.values()].map((i) => ({ agentId: i.agent.id, name: i.agent.name, state: i.state })),
      buffered: round.accepted.length,
      inFlight: core.outstanding.size,
    };
  }

  // ---------------------------------------------------------------- intake

  /** A disconnected agent's task in flight fails; returns false when the agent had none (the rounds' turn). */
  agentGone(agentId: string, reason: string): boolean {
    const carried = this.core.outstanding.get(agentId);
    if (!carried) return false;
    this.failure(carried, 'dropped', `disconnected: ${reason}`);
    return true;
  }

  rejectTask(agentId: string, taskId: string, reason: string, message: string): boolean {
    const out = this.core.outstanding.get(agentId);
    if (out?.task.taskId !== taskId) return false;
    this.failure(out, 'rejected', `${reason}: ${message}`);
    return true;
  }

  /** A training result for a task in flight, weighted by its staleness when it completes. */
  async beginUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    const { core } = this;
    const inv = core.outstanding.get(h.agentId);
    if (!inv || inv.task.taskId !== h.taskId) throw new RejectedUpdateError('unknown_task', `task_id: "${h.taskId}" is not a task in flight for this agent`);
    const reject: Reject = (reason, message) => {
      this.failure(inv, 'rejected', `${reason}: ${message}`);
      throw new RejectedUpdateError(reason, message);
    };
    if (h.round !== inv.task.round) reject('stale_round', `round: expected ${inv.task.round}, got ${h.round}`);
    checkHeader(core, h, inv, 'train', reject);
    const max = core.config.async.maxStaleness;
    const tau = (): number => core.globalModel.version - inv.baseVersion;
    if (tau() > max) reject('too_stale', `update is ${tau()} versions behind; async.maxStaleness is ${max}`);
    const slot = await acquireSlot(core, inv, () => core.outstanding.get(h.agentId) === inv);
    const complete = async (s: UpdateSlot | undefined): Promise<void> => {
      const buf = core.current;
      if (!buf) throw new RejectedUpdateError('round_closed', 'no round is open');
      const staleness = tau();
      if (staleness > max) throw new RejectedUpdateError('too_stale', `update became ${staleness} versions behind while uploading; async.maxStaleness is ${max}`);
      const speed = this.speedFactor(h.agentId, (Date.now() - inv.sentAt) / 1000);
      const w = { staleness, weight: core.strategy.weightOf(h.numExamples) * stalenessWeight(core.config.staleness, staleness) * speed };
      // Async folds at once (spooled or not): its cut is immediate.
      let note: Partial<Participant> = speed > 1 ? { speedFactor: speed } : {};
      if (s) {
        note = { ...note, ...scaledNote(await admitUpdate(core, s, h, inv, buf, inv.task.taskId, w), core.config.strategy.normBound) };
        core.agg.fold(s, w.weight);
      }
      buf.bytesReceived += h.totalBytes;
      const key = inv.task.taskId;
      core.outstanding.delete(h.agentId);
      buf.addExtra({ ...inv, state: 'invited' }, key);
      buf.resolve(key, accepted(core, h, inv, w, note), { agentId: h.agentId, numExamples: h.numExamples, weight: w.weight, metrics: h.metrics, baseVersion: inv.baseVersion });
      core.metrics.noteEval(inv.baseVersion, h.metrics);
      // Cut before releasing the agent: the release re-dispatches it, and it must get the new version.
      if (buf.accepted.length >= this.bufferSize) this.cut();
      core.deps.registry.release(h.agentId, inv.task.taskId, true);
      core.refreshLive();
      queueMicrotask(() => this.fill());
    };
    return openSink(core, h, inv, slot, {
      isOpen: () => core.outstanding.get(h.agentId) === inv && !core.done,
      onComplete: (s) => {
        if (!core.deps.spool) return complete(s);
        // One commit at a time, after the last cut is durable: the saved buffer always matches the accumulator.
        const work = this.commits.then(async () => {
          await this.cutPersisted;
          await complete(s);
        });
        this.commits = work.catch(() => undefined);
        return work;
      },
      onReject: (reason, message) => this.failure(inv, 'rejected', `${reason}: ${message}`),
      onAbort: (reason) => this.failure(inv, 'dropped', `upload aborted: ${reason}`),
    });
  }
}
