/** Upload intake shared by both drivers: header checks, staging slots, checks of the complete update, spooling, the sink. */
import {
  CODECS,
  RejectedUpdateError,
  type RejectionReason,
  checkEncodedSize,
  clipToNorm,
  createDecoder,
  describeSpecMismatch,
  l2Norm,
  type ResultHeaderMsg,
  type TensorSpec,
} from '@fedge/proto';
import { expectedEncoding } from '../config/compression.js';
import type { Participant } from '../store/store.js';
import type { UpdateSlot } from '../strategy/aggregate.js';
import type { OpenRound, Invitee } from './round.js';
import type { RunCore } from './run-core.js';
import { StagedUpload, type StagedUploadHooks, type UploadSink } from './upload.js';

export type Reject = (reason: RejectionReason, message: string) => never;

/** Reasons that a metric reported by an agent cannot be trusted. */
function checkMetrics(metrics: Record<string, number>): void {
  for (const [k, v] of Object.entries(metrics))
    if (!Number.isFinite(v)) throw new RejectedUpdateError('non_finite_metric', `metrics.${k}: must be a finite number, got ${v}`);
}

/** Checks a result header against the task it answers; `reject` records the failure and throws. */
export function checkHeader(core: RunCore, h: ResultHeaderMsg, inv: Invitee, kind: 'train' | 'evaluate', reject: Reject): void {
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
  // The task's codec, not the run's: warm-up changes the top-k density round by round.
  const encoding = expectedEncoding(inv.task.config);
  const codec = inv.task.config.codec || 'float32';
  const field = (CODECS as readonly string[]).includes(codec) ? 'codec' : 'uplink';
  if (h.encoding !== encoding) reject('bad_encoding', `encoding: this run's compression.${field} is ${codec}, so "${encoding}" is expected; got "${h.encoding}"`);
  const mismatch = describeSpecMismatch(core.specs, h.tensors as TensorSpec[]);
  if (mismatch) reject(mismatch.includes('dtype') ? 'wrong_dtype' : 'wrong_shape', mismatch);
  // SCAFFOLD runs take [delta | control-variate delta] and nothing else; other runs never take the pair.
  const variate = core.strategy.controlVariates !== undefined;
  if ((h.controlVariateDelta ?? false) !== variate)
    reject('variate_mismatch', variate
      ? `control_variate_delta: this run's strategy is scaffold, so the payload must be the model delta followed by the control-variate delta (the agent may be too old for scaffold)`
      : `control_variate_delta: this run's strategy (${core.config.strategy.name}) takes the model delta alone`);
  try {
    // The slot size: the model's values, twice with a control-variate delta.
    checkEncodedSize(h.encoding, h.totalBytes, core.agg.numParams);
  } catch (err) {
    reject((err as RejectedUpdateError).reason, (err as Error).message);
  }
  if (h.numExamples < 1) reject('no_examples', 'num_examples: must be at least 1 for a training result');
}

/** A pool of staging buffers: the aggregator's slots, or secure aggregation's masked-input slots. */
export interface SlotPool<S> {
  acquire(signal: AbortSignal): Promise<S>;
  release(slot: S): void;
}

/** Waits for one of the aggregator's staging slots: this is what keeps memory flat however many agents upload at once. */
export function acquireSlot(core: RunCore, inv: Invitee, stillWanted: () => boolean): Promise<UpdateSlot> {
  return acquireFrom(core.agg, core, inv, stillWanted);
}

/** Waits for a slot of `pool` for the invitee's upload; refused as round_closed if the upload is no longer wanted by then. */
export async function acquireFrom<S>(pool: SlotPool<S>, core: RunCore, inv: Invitee, stillWanted: () => boolean): Promise<S> {
  inv.state = 'uploading';
  core.refreshLive();
  const ctl = new AbortController();
  inv.abortUpload = (why) => ctl.abort(new RejectedUpdateError('round_closed', why));
  const slot = await pool.acquire(ctl.signal);
  if (!stillWanted()) {
    pool.release(slot);
    throw new RejectedUpdateError('round_closed', 'the round closed while the upload waited');
  }
  return slot;
}

/** The round closed (the agent recorded late, the round's spool removed) while the update was being written. */
function closedWhileSaving(): RejectedUpdateError {
  return new RejectedUpdateError('round_closed', 'the round closed while the update was being saved');
}

/** What admitUpdate did with an update beyond checking it. */
export interface Admitted {
  /** Spooled (durably with the run, or to the round's scratch spool for a strategy that needs every update): not to be folded now. */
  spooled: boolean;
  /** strategy.normBound scaled the update down from this L2 norm. */
  scaledFrom?: number;
}

/** The participant note of a norm-bounded update. */
export function scaledNote(a: Admitted, bound: number | undefined): Partial<Participant> {
  return a.scaledFrom !== undefined && bound !== undefined ? { reason: `update L2 norm ${a.scaledFrom.toPrecision(4)} scaled to strategy.normBound ${bound}` } : {};
}

/**
 * Checks a complete update before it can touch the model, bounds its norm (strategy.normBound), and spools it when
 * the open round is saved with the run (durable before acknowledged: the update file, then the run record naming it),
 * or, for a strategy that aggregates every update (robust), to the round's scratch spool.
 */
export async function admitUpdate(
  core: RunCore,
  s: UpdateSlot,
  h: ResultHeaderMsg,
  inv: Invitee,
  round: OpenRound,
  fileKey: string,
  w: { staleness: number; weight: number },
  /** Called once a durably spooled update's bytes are in the spool file: the slot is free while the disk syncs. */
  written?: () => void,
): Promise<Admitted> {
  const bad = core.agg.firstNonFinite(s);
  if (bad >= 0) throw new RejectedUpdateError('non_finite', `update contains NaN or Infinity (first at parameter ${bad})`);
  // Central DP's sensitivity bound must not rest on agents' good will: an update longer than the clip norm its task
  // carried is refused (local DP updates carry noise, so their norm is not bounded by S).
  const clip = inv.task.config.clipNorm ?? 0;
  if (clip > 0 && !((inv.task.config.noiseStd ?? 0) > 0)) {
    const norm = l2Norm(s.view);
    if (norm > clip * (1 + 1e-5))
      throw new RejectedUpdateError('norm_exceeds_clip', `update L2 norm ${norm.toPrecision(6)} exceeds the clip norm ${clip.toPrecision(6)} of its task; agents must clip before sending`);
  }
  // Every accepted update, after decoding and the checks above, before it is spooled or folded.
  const bound = core.config.strategy.normBound;
  // strategy.normBound (Sun et al. 2019): scaled in place to at most the bound, like an agent's clipping.
  const clipped = bound !== undefined ? clipToNorm(s.view, bound) : undefined;
  const scaled = clipped?.clipped ? clipped.norm : undefined;
  const out = (spooled: boolean): Admitted => (scaled !== undefined ? { spooled, scaledFrom: scaled } : { spooled });
  const bytes = new Uint8Array(s.view.buffer, s.view.byteOffset, s.view.byteLength);
  const spool = core.deps.spool;
  if (spool && core.run.openRound?.round === round.round) {
    // The round may close while the update is being made durable.
    const gone = () => inv.participant !== undefined || core.run.openRound?.round !== round.round;
    let file: string;
    try {
      file = await spool.append(core.run.id, round.round, fileKey, bytes, written);
    } catch (err) {
      if (gone()) throw closedWhileSaving();
      // Not the agent's fault: a full or read-only data directory suspends the run (resumable) instead.
      throw core.storageFault(err) ?? err;
    }
    if (gone()) throw closedWhileSaving();
    try {
      core.ctx.acceptUpdate({ name: inv.agent.name, numExamples: h.numExamples, weight: w.weight, staleness: w.staleness, baseVersion: inv.baseVersion, metrics: h.metrics, file, seconds: (Date.now() - inv.sentAt) / 1000 });
      // Durable before the agent hears "accepted", saved together with the others accepted in the same turn.
      await core.ctx.persistSoon();
    } catch (err) {
      throw core.storageFault(err) ?? err;
    }
    return out(true);
  }
  if (core.spools.keepsUpdates && round.kind === 'train') {
    // Not durable, but the strategy needs every update: a scratch segment for the round, removed when it is folded.
    const file = await core.spools.scratchSpool().append(core.run.id, round.round, fileKey, bytes).catch((err: unknown) => {
      throw inv.participant ? closedWhileSaving() : err;
    });
    if (inv.participant) throw closedWhileSaving();
    round.spooled.push({ name: inv.agent.name, file, weight: w.weight });
    return out(true);
  }
  return out(false);
}

/** The participant entry of an accepted result. */
export function accepted(core: RunCore, h: ResultHeaderMsg, inv: Invitee, w: { staleness: number; weight: number }, extra: Partial<Participant> = {}): Participant {
  return {
    agentId: h.agentId,
    name: inv.agent.name,
    outcome: 'completed',
    numExamples: h.numExamples,
    seconds: (Date.now() - inv.sentAt) / 1000,
    metrics: h.metrics,
    baseVersion: inv.baseVersion,
    staleness: w.staleness,
    weight: w.weight,
    ...extra,
    ...core.lineage(h.agentId),
  };
}

/**
 * A sync round invitee's upload that fails: a rejection is recorded as it is; an abort (disconnect) only while the
 * round is open and nothing is recorded for the invitee, as a drop.
 */
export function roundFailureHooks(round: OpenRound, inv: Invitee, fail: (reason: string, message: string, outcome?: 'dropped') => void): Pick<StagedUploadHooks, 'onReject' | 'onAbort'> {
  return {
    onReject: (reason, message) => fail(reason, message),
    onAbort: (reason) => {
      if (!inv.participant && round.open) fail('upload_aborted', `upload aborted: ${reason}`, 'dropped');
    },
  };
}

/** After a sync round records an invitee's result: its evaluation counts for the version it trained from, and the agent is free. */
export function afterAccepted(core: RunCore, h: ResultHeaderMsg, inv: Invitee): void {
  core.metrics.noteEval(inv.baseVersion, h.metrics);
  core.deps.registry.release(h.agentId, inv.task.taskId, true);
  core.refreshLive();
}

/** The sink a transport streams the payload into: compressed payloads are unpacked chunk by chunk straight into the slot. */
export function openSink(core: RunCore, h: ResultHeaderMsg, inv: Invitee, slot: UpdateSlot | undefined, hooks: Omit<StagedUploadHooks, 'release'>): UploadSink {
  const decoder = slot && h.kind === 'train' ? createDecoder(h.encoding, h.totalBytes, slot.view) : undefined;
  const sink = new StagedUpload(h.totalBytes, slot, decoder, { ...hooks, release: (s) => core.agg.release(s) });
  inv.abortUpload = (why) => sink.abort(why);
  return sink;
}
