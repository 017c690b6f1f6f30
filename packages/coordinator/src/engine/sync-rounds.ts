/** The sync driver: rounds with a deadline, over-selection and late results; also every evaluation round (final evaluation). */
import { RejectedUpdateError, createRng, type ResultHeaderMsg, type SecAggReplyMsg, type SecAggRequestMsg } from '@fedge/proto';
import type { OpenRoundState } from '../store/store.js';
import { sampleAgents } from '../strategy/fedavg.js';
import { stalenessWeight } from '../strategy/staleness.js';
import type { CandidateAgent } from '../strategy/strategy.js';
import { accepted, acquireSlot, admitUpdate, checkHeader, openSink, afterAccepted, roundFailureHooks, scaledNote, type Reject } from './intake.js';
import { OpenRound, type Invitee } from './round.js';
import type { DriverTraits, RunCore } from './run-core.js';
import type { UploadSink } from './upload.js';
import { SyncSecAgg } from './sync-secagg.js';
import type { AggregateOutcome } from '../strategy/strategy.js';

export class SyncRounds {
  static traits(): DriverTraits {
    return { keepVersions: 2, unit: 'rounds', published: 'round ended', showEvaluating: true };
  }

  /** sync.lateResults "next-round": an agent still training when its round closes may fold its result into the next. */
  private readonly carryLate: boolean;
  /** Secure aggregation (run config secureAggregation): idle unless a round starts it. */
  private readonly secure: SyncSecAgg;

  constructor(private readonly core: RunCore) {
    const c = core.config;
    this.carryLate = c.mode === 'sync' && c.sync.lateResults === 'next-round';
    this.secure = new SyncSecAgg(core, (round, agentId, reason, message, outcome) => this.failParticipant(round, agentId, reason, message, outcome));
  }

  /** Runs the rounds after the last saved one until the run is done. */
  async run(): Promise<void> {
    const core = this.core;
    try {
      for (let r = core.run.round + 1; r <= core.config.rounds && !core.done; r++) {
        core.privacyStop = core.strategy.privacy?.budgetStop(r);
        if (core.privacyStop) {
          core.log.info({ round: r }, core.privacyStop);
          break;
        }
        await this.waitForAgents(r);
        if (core.done) break;
        await this.trainRound(r);
      }
    } finally {
      core.spools.removeScratch();
    }
  }

  private async waitForAgents(round: number): Promise<void> {
    const { core } = this;
    const { registry, eligible } = core.deps;
    const need = core.config.agentsPerRound.min;
    if (registry.available(eligible).length >= need) return;
    core.ctx.setStatus('waiting', `waiting for ${need} available agents (${registry.available(eligible).length} now)`);
    core.live = { phase: 'waiting', round, participants: [] };
    core.log.info({ need }, core.run.statusMessage);
    await core.persist();
    const timeout = AbortSignal.timeout(core.config.waitForAgentsSeconds * 1000);
    try {
      await registry.waitForAvailable(need, AbortSignal.any([core.stopCtl.signal, timeout]), eligible);
    } catch (err) {
      if (core.stopCtl.signal.aborted) return;
      throw new Error(`no round could start: fewer than ${need} agents were available for ${core.config.waitForAgentsSeconds}s (agentsPerRound.min)`, { cause: err });
    }
  }

  private async trainRound(r: number): Promise<void> {
    const { core } = this;
    const c = core.config;
    core.ctx.setStatus('running', `round ${r}/${c.rounds}`);
    // Never durable under secure aggregation: no update is kept, and a round cut by a restart starts over with new keys
    // (masks are never reused), since a restarted coordinator has none of the round's protocol state.
    const spool = c.secureAggregation ? undefined : core.deps.spool;
    const resumed = spool && core.run.openRound?.round === r ? core.run.openRound : undefined;
    let invited: CandidateAgent[];
    let target = Infinity;
    if (resumed) {
      // A round interrupted by a restart continues with the same invitees and task seeds.
      invited = await this.waitForNamed(resumed.invitees.map((i) => i.name));
      core.log.info({ round: r, accepted: resumed.accepted.map((a) => a.name) }, 'round resumed after restart');
    } else {
      // One generator per round: selection does not depend on how many draws earlier rounds (or a restart) made.
      const rng = createRng(c.seed * 1_000_003 + r);
      const available = core.deps.registry.available(core.deps.eligible);
      const chosen = core.strategy.selectAgents(available, rng);
      // Over-selection: invite extra agents and close on the first results that suffice (Bonawitz et al. 2019).
      const picked = new Set(chosen); // not chosen.includes per agent: 10,000 available x 1,000 chosen
      const rest = available.filter((a) => !picked.has(a));
      const extra = c.sync.overSelection > 0 ? sampleAgents(rest, 0, Math.ceil(chosen.length * c.sync.overSelection), rng) : [];
      if (c.sync.overSelection > 0) target = chosen.length;
      invited = [...chosen, ...extra];
      if (spool) {
        spool.removeRound(core.run.id, r - 1);
        core.ctx.setOpenRound({ round: r, baseVersion: core.globalModel.version, invitees: invited.map((a, index) => ({ name: a.name, index })), accepted: [] });
        await core.ctx.persist();
      }
    }
    const secStart = c.secureAggregation ? this.secure.start(r, invited) : undefined;
    const cohort = secStart && !secStart.ok ? [] : invited;
    const round = this.openRound(r, 'train', cohort, c.roundDeadlineSeconds, target, resumed);
    core.log.info({ round: r, agents: invited.map((a) => a.name), target, baseVersion: round.baseVersion, secureAggregation: secStart?.ok ? secStart.state.params : undefined }, 'round started');
    await round.settled;
    round.close('deadline');
    core.current = undefined;
    // Unmasking waits for the survivors' shares (stage deadline); a stopped run ends the protocol at once.
    if (secStart?.ok && core.stopCtl.signal.aborted) secStart.state.abort('run stopped');
    const unmasked = secStart?.ok && !core.stopCtl.signal.aborted ? await secStart.state.finish() : undefined;
    // A stopped run ends here: the interrupted round made no model and is not a failed round.
    if (core.stopCtl.signal.aborted) return;
    const durable = spool && core.run.openRound?.round === r ? core.run.openRound : undefined;
    if (durable && !core.spools.keepsUpdates) await core.spools.foldRound(durable.accepted);
    // Late results carried from the round before this one had their chance; stop waiting for them.
    for (const [id, inv] of core.outstanding) if (inv.task.round < r) core.dropOutstanding(id, inv, 'not back by the end of the next round');

    core.live = { ...core.live, phase: 'aggregating' };
    const t0 = performance.now();
    const base = core.globalModel.blob.weights;
    let outcome: AggregateOutcome;
    if (secStart) {
      if (!secStart.ok) outcome = { ok: false, reason: `secure aggregation could not start: ${secStart.reason}` };
      else if (!unmasked?.ok) outcome = { ok: false, reason: `secure aggregation: ${unmasked?.reason ?? 'no result'}` };
      else {
        // The unmasked weighted mean is what a plaintext round's streamed mean would be: the strategy takes it as such
        // (central DP adds its noise to it here, after unmasking: mean x weight sum is the sum it noises).
        const res = unmasked;
        const survivors = new Set(res.survivors);
        const kept = round.accepted.filter((a) => survivors.has(a.agentId));
        core.log.info({ round: r, survivors: res.survivors.length, dropped: res.dropped.length, weightSum: res.weightSum }, 'secagg: unmasked the round\'s sum');
        outcome = core.strategy.aggregate(base, { count: kept.length, totalWeight: res.weightSum, mean: () => res.mean }, kept, round.failures);
      }
    } else if (core.spools.keepsUpdates) {
      // Every accepted update of the round (a resumed round's include those spooled before the restart), read in chunks.
      const kept = durable ? durable.accepted.map((a) => ({ name: a.name, file: a.file, weight: a.weight })) : round.spooled;
      const source = core.spools.source(kept);
      try {
        outcome = core.strategy.aggregateUpdates!(base, source, round.accepted, round.failures);
      } finally {
        source.close();
      }
      if (!durable) core.spools.scratchSpool().removeRound(core.run.id, r);
    } else outcome = core.strategy.aggregate(base, core.aggView(), round.accepted, round.failures);
    const record = core.roundRecord(round);
    record.aggregationMs = performance.now() - t0;
    core.recordSpent(record);
    if (secStart?.ok) record.secagg = secStart.state.stats((id) => round.invitees.get(id)?.agent.name ?? id);
    if (outcome.ok) await core.publishVersion(outcome.weights, record);
    else {
      record.status = 'failed';
      record.reason = outcome.reason;
      core.log.warn({ round: r, reason: outcome.reason }, 'round produced no new model');
    }
    // The round's record and the end of its open state are saved together; only then are its updates dropped.
    core.ctx.setOpenRound(undefined);
    await core.finishRecord(record, round);
    spool?.removeRound(core.run.id, r);
  }

  /** After a restart: the named agents once they are back (up to waitForAgentsSeconds), in the given order. */
  private async waitForNamed(names: string[]): Promise<CandidateAgent[]> {
    const { core } = this;
    const deadline = Date.now() + core.config.waitForAgentsSeconds * 1000;
    const find = (): CandidateAgent[] => {
      const online = new Map(core.deps.registry.available(core.deps.eligible).map((a) => [a.name, a]));
      return names.flatMap((n) => (online.has(n) ? [online.get(n)!] : []));
    };
    while (find().length < names.length && Date.now() < deadline && !core.stopCtl.signal.aborted) await new Promise((r) => setTimeout(r, 200));
    return find();
  }

  /** What becomes of an agent still training when its round closes: carried to the next round, or cancelled. */
  private lateHandler(inv: Invitee): string {
    // Secure aggregation: a late agent never sends unmask shares (it sends them only after its masked input is in).
    this.secure.agentOut(inv.agent.id);
    if (this.carryLate && !this.core.stopCtl.signal.aborted) {
      this.core.outstanding.set(inv.agent.id, inv);
      return 'its result will be folded into the next round';
    }
    this.core.deps.registry.cancel(inv.agent.id, inv.task);
    return 'result discarded';
  }

  private openRound(r: number, kind: 'train' | 'evaluate', chosen: CandidateAgent[], deadlineSeconds: number, target = Infinity, resumed?: OpenRoundState): OpenRound {
    const { core } = this;
    core.agg.reset();
    const deadline = Date.now() + deadlineSeconds * 1000;
    const round = new OpenRound(r, kind, core.globalModel.version, deadline, target);
    core.current = round;
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
      const task = core.tasks.round(kind, core.globalModel, r, index, deadline, agent.name);
      // Secure aggregation: the round's parameters and stage deadlines ride with each training task.
      if (kind === 'train') this.secure.attach(r, agent.id, task);
      round.invitees.set(agent.id, { agent, task, state: 'invited', sentAt: Date.now(), baseVersion: core.globalModel.version });
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
      if (!core.deps.registry.assign(agent.id, task))
        round.resolve(agent.id, { agentId: agent.id, name: agent.name, outcome: 'dropped', reason: 'agent unavailable when the task was sent' });
    });
    if (resumed) {
      // Invitees that did not come back after the restart.
      for (const x of resumed.invitees) {
        if (chosen.some((a) => a.name === x.name) || resumed.accepted.some((a) => a.name === x.name)) continue;
        core.log.warn({ round: r, name: x.name }, 'invitee did not reconnect after the restart');
      }
    }
    if (kind === 'train') this.secure.onFail(r, () => round.close('deadline', (inv) => this.lateHandler(inv)));
    if (chosen.length === 0) round.close('deadline');
    core.live = { phase: kind === 'train' ? 'training' : 'evaluating', round: r, deadline, participants: round.live() };
    core.emit();
    return round;
  }

  /**
   * An aggregator site's evaluation sub-run (config.upstream.evaluate): one evaluate round of version 0 (the root's
   * version) on its agents, recorded as round 1 without a new version; the site answers the root with its results.
   */
  async evaluateOnly(): Promise<void> {
    const { core } = this;
    await this.waitForAgents(1);
    if (core.stopCtl.signal.aborted) return;
    core.ctx.setStatus('running');
    const chosen = core.strategy.selectAgents(core.deps.registry.available(core.deps.eligible), core.rng);
    const round = this.openRound(1, 'evaluate', chosen, core.config.roundDeadlineSeconds);
    await round.settled;
    round.close('deadline');
    core.current = undefined;
    for (const a of round.accepted) core.metrics.noteEval(0, a.metrics);
    const record = core.roundRecord(round);
    if (round.accepted.length === 0) Object.assign(record, { status: 'failed', reason: round.failures.length ? undefined : 'no agent evaluated the model' });
    await core.finishRecord(record, round);
  }

  /** Asks agents to evaluate the final model so the last version gets federated metrics too (both modes). */
  async finalEvaluation(): Promise<void> {
    const { core } = this;
    const last = core.run.rounds.at(-1);
    if (!last?.version) return;
    const chosen = core.strategy.selectAgents(core.deps.registry.available(core.deps.eligible), core.rng);
    if (chosen.length === 0) return;
    const round = this.openRound(last.round, 'evaluate', chosen, Math.min(core.config.roundDeadlineSeconds, 300));
    await round.settled;
    round.close('deadline');
    core.current = undefined;
    for (const a of round.accepted) core.metrics.noteEval(round.baseVersion, a.metrics);
    core.metrics.checkFederatedTarget(round.baseVersion);
    await core.persist();
  }

  // ---------------------------------------------------------------- intake

  /** A disconnected invitee of the open round is dropped; the round goes on. */
  agentGone(agentId: string, reason: string): void {
    const { core } = this;
    // Even after its masked input: the unmask stage stops waiting for an agent that is gone.
    this.secure.agentOut(agentId);
    if (core.outstanding.has(agentId)) core.outstanding.delete(agentId);
    const round = core.current;
    const inv = round?.invitees.get(agentId);
    if (!round || !inv || inv.participant) return;
    inv.abortUpload?.('disconnected');
    round.resolve(agentId, { agentId, name: inv.agent.name, outcome: 'dropped', reason: `disconnected: ${reason}` });
    core.deps.registry.release(agentId, inv.task.taskId, false);
    core.refreshLive();
  }

  rejectTask(agentId: string, taskId: string, reason: string, message: string): void {
    const round = this.core.current;
    const inv = round?.invitees.get(agentId);
    if (round && inv && inv.task.taskId === taskId) this.failParticipant(round, agentId, reason, message);
  }

  /** A result for the open round (or a late one carried from the round before, discounted by its staleness). */
  async beginUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    const { core } = this;
    const round = core.current;
    let inv = round?.invitees.get(h.agentId);
    const carried = core.outstanding.get(h.agentId);
    if (!inv && carried && carried.task.taskId === h.taskId) {
      core.outstanding.delete(h.agentId);
      if (!round?.open || round.kind !== 'train') {
        core.deps.registry.release(h.agentId, h.taskId, false);
        core.noteLateOutcome(carried, 'arrived when no round was open; discarded');
        throw new RejectedUpdateError('late_discarded', `round ${carried.task.round} closed and no round is open to take its late result`);
      }
      inv = { agent: carried.agent, task: carried.task, state: 'invited', sentAt: carried.sentAt, baseVersion: carried.baseVersion };
      round.addExtra(inv);
    }
    const reject: Reject = (reason, message) => {
      if (round && inv && !inv.participant) this.failParticipant(round, h.agentId, reason, message);
      throw new RejectedUpdateError(reason, message);
    };
    // An agent answering the open round without a task in it (a forged or stray task id) is not late: say so.
    if (round?.open && !inv && h.round === round.round)
      throw new RejectedUpdateError('unknown_task', `task_id: "${h.taskId}" is not a task of this agent in round ${h.round}`);
    if (!round || !round.open || !inv || h.round !== inv.task.round)
      throw new RejectedUpdateError('stale_round', `round: ${h.round} is not open (current: ${round?.open ? round.round : 'none'})`);
    if (inv.participant) throw new RejectedUpdateError('duplicate', `a result for this task was already recorded (${inv.participant.outcome})`);
    if (this.secure.covers(round.round) && round.kind === 'train') return this.secure.beginMasked(h, inv, round, reject);
    checkHeader(core, h, inv, round.kind, reject);
    const staleness = round.baseVersion - inv.baseVersion;
    const w = { staleness, weight: core.strategy.weightOf(h.numExamples) * stalenessWeight(core.config.staleness, staleness) };
    const member = inv;
    const slot = round.kind === 'train' ? await acquireSlot(core, member, () => round.open && !member.participant) : undefined;
    const late = member.task.round !== round.round;
    return openSink(core, h, member, slot, {
      isOpen: () => round.open && !member.participant,
      onComplete: async (s, free) => {
        // Sync folds spooled updates at round end, in name order; unspooled ones fold now. A durably spooled update
        // frees its slot once written, so the next uploads stage while it waits for the disk (their syncs group).
        const admitted = s ? await admitUpdate(core, s, h, member, round, member.agent.name, w, free) : { spooled: false };
        if (s && !admitted.spooled) core.agg.fold(s, w.weight);
        round.bytesReceived += h.totalBytes;
        const note = scaledNote(admitted, core.config.strategy.normBound);
        const p = accepted(core, h, member, w, late ? { reason: [`late result from round ${member.task.round}`, note.reason].filter(Boolean).join('; ') } : note);
        round.resolve(h.agentId, p, { agentId: h.agentId, numExamples: h.numExamples, weight: w.weight, metrics: h.metrics, baseVersion: member.baseVersion });
        if (late) core.noteLateOutcome(member, `folded into round ${round.round} (staleness ${staleness})`);
        afterAccepted(core, h, member);
      },
      ...roundFailureHooks(round, member, (reason, message, outcome) => this.failParticipant(round, h.agentId, reason, message, outcome)),
    });
  }

  /** A secure-aggregation stage message of a cohort agent. */
  secagg(req: SecAggRequestMsg): Promise<SecAggReplyMsg> | SecAggReplyMsg {
    return this.secure.handle(req);
  }

  private failParticipant(round: OpenRound, agentId: string, reason: string, message: string, outcome: 'rejected' | 'dropped' = 'rejected'): void {
    const { core } = this;
    const inv = round.invitees.get(agentId);
    if (!inv || inv.participant) return;
    this.secure.agentOut(agentId);
    core.log.warn({ agentId, name: inv.agent.name, round: round.round, reason, message }, 'result rejected');
    round.resolve(agentId, { agentId, name: inv.agent.name, outcome, reason: `${reason}: ${message}` });
    core.deps.registry.release(agentId, inv.task.taskId, false);
    // The agent may still be training or uploading; tell it to stop so it is free for the next round.
    if (outcome === 'rejected') core.deps.registry.cancel(agentId, inv.task);
    core.refreshLive();
  }
}
