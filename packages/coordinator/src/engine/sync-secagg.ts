/** Secure aggregation inside sync rounds: a round's protocol state, its cohort's tasks, masked uploads and stage messages. */
import type { ResultHeaderMsg, SecAggReplyMsg, SecAggRequestMsg, TaskMsg } from '@fedge/proto';
import type { CandidateAgent } from '../strategy/strategy.js';
import { accepted, acquireFrom, afterAccepted, roundFailureHooks, type Reject } from './intake.js';
import type { OpenRound, Invitee } from './round.js';
import type { RunCore } from './run-core.js';
import { StagedUpload, type UploadSink } from './upload.js';
import { SecAggRound, roundParams } from './secagg-round.js';
import { MaskedSlots, addMaskedInput, checkMaskedHeader, type MaskedSlot } from './secagg-intake.js';

/** The round driver's way of recording a participant's failure (and telling the agent to stop). */
export type FailParticipant = (round: OpenRound, agentId: string, reason: string, message: string, outcome?: 'rejected' | 'dropped') => void;

export class SyncSecAgg {
  /**
   * The round's protocol state, kept until the next round starts so late stage calls are answered; its cohort's task
   * ids; the masked inputs' staging buffers.
   */
  private sec: { round: number; state: SecAggRound; tasks: Map<string, string> } | undefined;
  private maskedSlots: MaskedSlots | undefined;

  constructor(
    private readonly core: RunCore,
    private readonly fail: FailParticipant,
  ) {}

  /** Whether round `r`'s training results are masked inputs. */
  covers(r: number): boolean {
    return this.sec?.round === r;
  }

  /** The round's protocol state for this cohort, or why it cannot run (too few agents for the parameters). */
  start(r: number, cohort: readonly CandidateAgent[]): { ok: true; state: SecAggRound } | { ok: false; reason: string } {
    const { core } = this;
    const c = core.config;
    const cfg = c.secureAggregation!;
    this.sec?.state.abort('a new round started');
    this.sec = undefined;
    try {
      // Central DP weighs every update 1 (strategy.weightOf), and clips each to privacy.clipNorm in L2, so no
      // coordinate of an honest update exceeds it: the quantization range then costs nothing.
      const uniform = core.strategy.weightOf(2) === 1 && core.strategy.weightOf(3) === 1;
      const cohortMaxExamples = Math.max(0, ...cohort.map((a) => a.numExamples || 0));
      const params = roundParams(cfg, cohort.length, { uniformWeights: uniform, clipDefault: c.privacy?.clipNorm ?? 1, cohortMaxExamples });
      const now = Date.now();
      const roundEnd = now + c.roundDeadlineSeconds * 1000;
      const advertiseBy = Math.min(now + cfg.advertiseSeconds * 1000, roundEnd);
      const shareBy = Math.min(advertiseBy + cfg.shareSeconds * 1000, roundEnd);
      // int8 mode derives the ring from the cohort's size, so a round's bits may differ from the last one's.
      if (this.maskedSlots?.bits !== params.bits) this.maskedSlots = new MaskedSlots(core.agg.numParams, params.bits);
      const state = new SecAggRound(params, core.agg.numParams, new Set(cohort.map((a) => a.id)), { advertiseBy, shareBy, maskedInputBy: roundEnd, unmaskSeconds: cfg.unmaskSeconds }, core.log.child({ round: r, secagg: true }));
      this.sec = { round: r, state, tasks: new Map() };
      return { ok: true, state };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }

  /** A training task of round `r`'s cohort: the round's parameters and stage deadlines ride with it. */
  attach(r: number, agentId: string, task: TaskMsg): void {
    if (this.sec?.round !== r) return;
    task.config = { ...task.config, secaggJson: JSON.stringify(this.sec.state.task()) };
    this.sec.tasks.set(agentId, task.taskId);
  }

  /** What round `r` does when the protocol cannot finish (too few agents left). */
  onFail(r: number, close: () => void): void {
    if (this.sec?.round === r) this.sec.state.onFail = close;
  }

  /** The agent left the cohort (late, gone, rejected): the protocol stops waiting for it. */
  agentOut(agentId: string): void {
    this.sec?.state.agentOut(agentId);
  }

  /** A masked input: staged in one of a few buffers as it streams, added to the round's running sum when complete. */
  async beginMasked(h: ResultHeaderMsg, inv: Invitee, round: OpenRound, reject: Reject): Promise<UploadSink> {
    const { core } = this;
    const sec = this.sec!.state;
    checkMaskedHeader(core, h, inv, sec, reject);
    // A pool sized for the round's ring (start() makes a new one when the ring's bits change).
    const slots = this.maskedSlots!;
    const open = (): boolean => round.open && !inv.participant;
    const slot = await acquireFrom(slots, core, inv, open);
    const sink = new StagedUpload(h.totalBytes, slot, undefined, {
      isOpen: open,
      onComplete: () => {
        addMaskedInput(sec, h.agentId, slot as MaskedSlot, h.secaggRejected ?? []);
        round.bytesReceived += h.totalBytes;
        // The weight is inside the masked input; metrics weigh each agent alike (its example count is not sent).
        const w = { staleness: 0, weight: 1 };
        round.resolve(h.agentId, accepted(core, h, inv, w), { agentId: h.agentId, numExamples: 1, weight: 1, metrics: h.metrics, baseVersion: inv.baseVersion });
        afterAccepted(core, h, inv);
      },
      ...roundFailureHooks(round, inv, (reason, message, outcome) => this.fail(round, h.agentId, reason, message, outcome)),
      release: (s) => slots.release(s as MaskedSlot),
    });
    inv.abortUpload = (why) => sink.abort(why);
    return sink;
  }

  /** A stage message of a cohort agent: answered when its stage closes (advertise, share, survivors) or at once (unmask). */
  handle(req: SecAggRequestMsg): Promise<SecAggReplyMsg> | SecAggReplyMsg {
    const sec = this.sec;
    if (!sec || sec.round !== req.round || sec.tasks.get(req.agentId) !== req.taskId)
      return { accepted: false, reason: 'unknown_task', message: `task_id: "${req.taskId}" is not a secure-aggregation task of this agent in round ${req.round}${sec ? ` (current: ${sec.round})` : ''}`, payloadJson: '' };
    return sec.state.handle(req);
  }
}
