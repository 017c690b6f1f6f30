/**
 * Drives one run over numbered global versions: synchronous rounds (sync-rounds.ts: deadline, over-selection,
 * late-result policy) or asynchronous buffered aggregation (async-buffer.ts: FedBuff), the driver chosen once here.
 * Aggregation streams; failures are recorded as data; the record is written only through the RunContext.
 */
import { EventEmitter } from 'node:events';
import type { ModelBlob, ResultHeaderMsg, SecAggReplyMsg, SecAggRequestMsg, StorageError } from '@fedge/proto';
import type { RunRecord } from '../store/store.js';
import type { Strategy } from '../strategy/strategy.js';
import { AsyncBuffer } from './async-buffer.js';
import type { GlobalModel } from './global-model.js';
import { RunCore, type LiveView, type RunEngineDeps } from './run-core.js';
import type { RunContext } from './run-context.js';
import { SyncRounds } from './sync-rounds.js';
import { isStorageFault } from '../store/storage-error.js';
import type { UploadSink } from './upload.js';

export type { LiveView, RunEngineDeps } from './run-core.js';

export class RunEngine extends EventEmitter<{ update: [RunRecord, LiveView]; end: [RunRecord] }> {
  private readonly core: RunCore;
  /** Rounds: the sync driver, and in both modes the final evaluation round. */
  private readonly rounds: SyncRounds;
  /** The async driver, when the run is async; training results and agents' tasks in flight go to it first. */
  private readonly buffer: AsyncBuffer | undefined;
  /** Set when the data directory stopped taking writes: the run ends here but stays resumable (status running). */
  private suspended: StorageError | undefined;
  /** execute() has returned: nothing more happens in this process, whatever the status says. */
  private ended = false;

  /** `ctx` is the run record's only writer; the engine reads the record through it and changes it by its transitions. */
  constructor(readonly ctx: RunContext, initial: ModelBlob, deps: RunEngineDeps) {
    super();
    this.core = new RunCore(ctx, initial, deps, () => this.emit('update', this.ctx.run, this.core.live));
    const async = ctx.run.config.mode === 'async';
    this.core.traits = async ? AsyncBuffer.traits(ctx.run.config) : SyncRounds.traits();
    this.rounds = new SyncRounds(this.core);
    this.buffer = async ? new AsyncBuffer(this.core) : undefined;
  }

  /** The run record (read-only here: RunContext writes it); the rest of the run's state is the core's. */
  get run(): Readonly<RunRecord> {
    return this.core.run;
  }

  get live(): LiveView {
    return this.core.live;
  }

  get globalModel(): GlobalModel {
    return this.core.globalModel;
  }

  /** The run's strategy (the coordinator serves its control variate, if it has one, to agents). */
  get strategy(): Strategy {
    return this.core.strategy;
  }

  modelVersion(version: number): GlobalModel | undefined {
    return this.core.modelVersion(version);
  }

  stop(reason = 'stopped by user'): void {
    if (this.isFinished()) return;
    this.ctx.setMessage(reason);
    this.core.stopCtl.abort(new Error(reason));
    const round = this.core.current;
    const pending = round?.pending() ?? [];
    round?.close('stopped');
    // Agents still on the stopped round's tasks are told to stop and are free for other runs at once: left busy, they
    // were invited by no other run until they rejoined (a site's next sub-run waited out its whole deadline for them).
    for (const inv of pending) this.core.deps.registry.cancel(inv.agent.id, inv.task);
    this.core.wake();
  }

  /**
   * The data directory cannot be written: the run stops without recording an end (it could not be saved anyway),
   * so the next coordinator process resumes it from its last saved round.
   */
  suspend(fault: StorageError): void {
    if (this.suspended || this.isFinished()) return;
    this.suspended = fault;
    this.stop(`suspended: the data directory cannot be written (${fault.code}): ${fault.message}`);
  }

  isFinished(): boolean {
    return this.ended || ['completed', 'failed', 'stopped'].includes(this.run.status);
  }

  /** Runs every round; resolves when the run ends (never rejects: failures end up in the run record). */
  async execute(): Promise<RunRecord> {
    const { core, ctx } = this;
    const c = core.config;
    const aborted = (): boolean => core.stopCtl.signal.aborted;
    try {
      await core.attached;
      ctx.begin();
      await core.registerVersion(core.globalModel, 0);
      await core.evaluateInitial();
      // A site's evaluation sub-run only evaluates the root's version on its agents.
      if (c.upstream?.evaluate) await this.rounds.evaluateOnly();
      else await (this.buffer ?? this.rounds).run();
      core.cancelOutstanding('run finished');
      // A site's sub-run is one round of its root's run: the root evaluates, the site only trains.
      if (!aborted() && !c.upstream) await this.rounds.finalEvaluation();
      // A suspended run never reads as stopped, not even in a save racing its end: that would not resume.
      if (aborted()) ctx.setStatus(this.suspended ? 'running' : 'stopped');
      else {
        const n = this.run.rounds.filter((x) => x.status === 'completed').length;
        const unit = core.traits.unit;
        const hit = this.run.reachedTarget;
        const message = core.privacyStop
          ? `${core.privacyStop}; completed ${n} of ${c.rounds} ${unit}`
          : hit
          ? `reached ${core.metrics.stopAt?.metric === 'accuracy' ? 'target accuracy' : `stopAt ${core.metrics.stopAt?.metric}`} ${core.metrics.stopAt?.value} at version ${hit.version} (${(hit.value ?? hit.accuracy).toFixed(4)})`
          : `completed ${n} of ${c.rounds} ${unit}`;
        ctx.setStatus('completed', message);
      }
    } catch (err) {
      // A full or read-only data directory is not the run's failure: it is suspended (below), not stored as failed.
      const fault = core.storageFault(err);
      if (fault) this.suspend(fault);
      else if (aborted()) ctx.setStatus('stopped');
      else {
        ctx.setStatus('failed', err instanceof Error ? err.message : String(err));
        core.log.error({ err }, 'run failed');
      }
    } finally {
      core.cancelOutstanding('run ended');
      core.agg.dispose();
    }
    core.live = { phase: 'done', round: this.run.round, participants: [] };
    if (this.suspended) {
      // Still active as far as the store knows: the next coordinator on this data directory resumes it.
      ctx.markResumable(`suspended at round ${this.run.round + 1} (${this.suspended.code}): ${this.suspended.message}`);
      core.log.error({ code: this.suspended.code, path: this.suspended.path, freeBytes: this.suspended.freeBytes }, 'run suspended: the data directory cannot be written; it resumes when the coordinator restarts with space');
    } else {
      let modelPath: string | undefined;
      try {
        if (core.deps.saveFinalModel) modelPath = await core.deps.saveFinalModel(this.run, core.globalModel.blob);
      } catch (err) {
        core.log.error({ err }, 'saving the final model failed');
      }
      ctx.finish(modelPath);
    }
    try {
      await core.persist();
    } catch (err) {
      // Never thrown out of here (the coordinator does not await execute): a run that cannot be saved is suspended;
      // one already suspended keeps the record it last saved, which is what the next process resumes from.
      const fault = this.suspended && isStorageFault(err) ? this.suspended : core.storageFault(err);
      if (!fault) core.log.error({ err }, 'saving the run\'s end failed');
      else if (!this.suspended) {
        this.suspended = fault;
        ctx.markResumable(`suspended (${fault.code}): ${fault.message}`);
      }
    }
    this.ended = true;
    core.log.info({ status: this.run.status, version: core.globalModel.version, message: this.run.statusMessage }, 'run ended');
    this.emit('end', ctx.run);
    return ctx.run;
  }

  // ---------------------------------------------------------------- called by the coordinator

  /** An agent disconnected: its pending task fails, the round goes on. */
  agentGone(agentId: string, reason: string): void {
    if (this.buffer?.agentGone(agentId, reason)) return;
    this.rounds.agentGone(agentId, reason);
  }

  /** A download of `want` as a delta chain from the version an agent holds, or undefined: send the full model. */
  downlinkChain(haveVersion: number, haveSha: string, want: GlobalModel): { encoding: string; payload: Uint8Array } | undefined {
    return this.core.downlink?.chain(haveVersion, haveSha, want);
  }

  /** Records a model download so the round's bytes-on-the-wire figure is right. */
  noteModelSent(bytes: number, dense = bytes): void {
    if (!this.core.current) return;
    this.core.current.bytesSent += bytes;
    this.core.current.bytesSentDense += dense;
  }

  /** Rejects an agent's current task (used when its result header could not even be parsed). */
  rejectTask(agentId: string, taskId: string, reason: string, message: string): void {
    if (this.buffer?.rejectTask(agentId, taskId, reason, message)) return;
    this.rounds.rejectTask(agentId, taskId, reason, message);
  }

  /** A secure-aggregation stage message (sync rounds only: the config refuses secureAggregation with async mode). */
  async secagg(req: SecAggRequestMsg): Promise<SecAggReplyMsg> {
    if (this.buffer) return { accepted: false, reason: 'unknown_task', message: 'this run is async: it has no secure aggregation', payloadJson: '' };
    return this.rounds.secagg(req);
  }

  /**
   * Validates a result header against the task it answers and returns a sink for its payload.
   * Throws RejectedUpdateError for anything that cannot be accepted; that is recorded as the agent's failure.
   */
  beginUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    return this.buffer && h.kind === 'train' ? this.buffer.beginUpload(h) : this.rounds.beginUpload(h);
  }
}
