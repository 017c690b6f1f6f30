/** One secure-aggregation round at the coordinator: the library's SecAggServer driven by stage deadlines and agents' held stage calls. */
import {
  SecAggError,
  SecAggServer,
  ValidationError,
  parseOrThrow,
  secaggParams,
  secaggReportSchema,
  secaggToJson,
  type SecAggAdvertise,
  type SecAggParams,
  type SecAggShareKeys,
  type SecAggUnmask,
  type SecAggRefusal,
  type SecAggReplyMsg,
  type SecAggRequestMsg,
  type SecAggResult,
  type SecAggTask,
} from '@fedge/proto';
import type { SecureAggregationConfig } from '../config/secagg-config.js';
import type { Logger } from '../log.js';
import type { SecAggRoundStats } from '../store/store.js';

type Phase = 'advertise' | 'share' | 'masked' | 'unmask' | 'done';

/** The library's refusal kinds as the stage reply's reasons. */
const REFUSAL_OF: Record<SecAggError['kind'], SecAggRefusal> = {
  out_of_order: 'out_of_order',
  duplicate: 'duplicate',
  dropped: 'stage_closed',
  not_in_round: 'unknown_task',
  privacy: 'malformed',
};

const refused = (reason: SecAggRefusal, message: string): SecAggReplyMsg => ({ accepted: false, reason, message, payloadJson: '' });
const replyWith = (payload: unknown): SecAggReplyMsg => ({ accepted: true, reason: '', message: '', payloadJson: payload === undefined ? '' : secaggToJson(payload) });

/** The round's parameters from the run config and the cohort size (library defaults for what the config leaves out). */
export function roundParams(cfg: SecureAggregationConfig, n: number, opts: { uniformWeights: boolean; clipDefault: number; cohortMaxExamples?: number | undefined }): SecAggParams {
  const neighbors = cfg.neighbors !== undefined ? Math.min(cfg.neighbors, n - 1) : undefined;
  const int8 = cfg.quantization === 'int8';
  // int8 mode has 255 levels for weight x update: a loose maxWeight would leave a typical agent a few of them, so it
  // defaults to the cohort's largest registered example count (public: agents register it when they join).
  const maxWeight = cfg.maxWeight ?? (int8 && opts.cohortMaxExamples ? Math.max(1, Math.round(opts.cohortMaxExamples)) : 100_000);
  return secaggParams(n, {
    ...(neighbors !== undefined ? { neighbors } : {}),
    ...(cfg.threshold !== undefined ? { threshold: cfg.threshold } : {}),
    ...(int8 ? { quantization: 'int8' as const } : { bits: cfg.bits ?? 32 }),
    // Under central DP every update weighs 1: a maximum weight of 1 spends the whole grid on the update.
    maxWeight: opts.uniformWeights ? 1 : maxWeight,
    clipRange: cfg.clip ?? opts.clipDefault,
  });
}

/**
 * Stages: advertise and share run while agents train (each closes when every agent still in the round answered or at
 * its deadline); masked inputs arrive as uploads (secagg-intake.ts) until the round's own deadline; then unmask. An
 * agent's stage call is answered when its stage closes, with what it needs next. A stage below the threshold fails
 * the round (onFail), and every held call is answered with round_failed.
 */
export class SecAggRound {
  readonly server: SecAggServer;
  private phase: Phase = 'advertise';
  private failure: string | undefined;
  /** Agents of the cohort no longer in it (failed, rejected, disconnected): stages do not wait for them. */
  private readonly out = new Set<string>();
  private readonly sent = { advertise: new Set<string>(), share: new Set<string>(), unmask: new Set<string>() };
  private readonly held = { advertise: new Map<string, (r: SecAggReplyMsg) => void>(), share: new Map<string, (r: SecAggReplyMsg) => void>(), survivors: new Map<string, (r: SecAggReplyMsg) => void>() };
  private readonly answers = { advertise: new Map<string, unknown>(), share: new Map<string, unknown>(), survivors: new Map<string, unknown>() };
  private readonly timers: NodeJS.Timeout[] = [];
  private unmaskDone: (() => void) | undefined;
  /**
   * Unmask stage: shares still missing per secret (self-mask seeds of survivors, masking keys of dropped agents whose
   * pairwise masks are in the sum). When none is missing the stage closes without waiting for holders that dropped out.
   */
  private missing: { b: Map<string, number>; s: Map<string, number> } | undefined;
  /** Called once when a stage fails (the driver closes the round). */
  onFail: (reason: string) => void = () => undefined;
  /** Masked inputs the library refused, and when the unmask stage began and the sum was unmasked (for the record). */
  private refusedInputs = 0;
  private unmaskStarted: number | undefined;
  private unmaskEnded: number | undefined;

  constructor(
    readonly params: SecAggParams,
    numParams: number,
    /** Agent ids of the cohort. */
    readonly cohort: ReadonlySet<string>,
    readonly deadlines: { advertiseBy: number; shareBy: number; maskedInputBy: number; unmaskSeconds: number },
    private readonly log: Logger,
  ) {
    this.server = new SecAggServer(params, { length: numParams });
    this.timers.push(setTimeout(() => this.closeAdvertise(), Math.max(0, deadlines.advertiseBy - Date.now())));
    this.timers.push(setTimeout(() => this.closeShare(), Math.max(0, deadlines.shareBy - Date.now())));
  }

  /** TrainConfig.secagg_json of the cohort's tasks. */
  task(): SecAggTask {
    const p = this.params;
    const d = this.deadlines;
    return { nAgents: p.nAgents, threshold: p.threshold, neighbors: p.neighbors, bits: p.bits, maxWeight: p.maxWeight, clipRange: p.clipRange, ...(p.levels !== undefined ? { levels: p.levels } : {}), advertiseBy: d.advertiseBy, shareBy: d.shareBy, maskedInputBy: d.maskedInputBy, unmaskSeconds: d.unmaskSeconds };
  }

  get failed(): string | undefined {
    return this.failure;
  }

  /** May a masked input of `agentId` still be summed? */
  takesMaskedInput(agentId: string): boolean {
    return this.phase === 'masked' && this.failure === undefined && this.cohort.has(agentId);
  }

  /** Adds a complete masked input to the running sum (the library refuses one it cannot unmask). */
  addMasked(agentId: string, y: Uint32Array, rejected: string[]): void {
    try {
      if (!this.takesMaskedInput(agentId)) throw new SecAggError(this.failure ?? `the masked-input stage is not open (stage ${this.phase})`);
      this.server.addMaskedInput(agentId, { y, rejected });
    } catch (err) {
      this.refusedInputs++;
      throw err;
    }
    if (rejected.length) this.log.warn({ agentId, rejected }, 'secagg: an agent reports share boxes that did not open (tampered or forged); senders not yet in the sum are dropped');
  }

  /**
   * Why a masked input from this agent is refused before any byte of it is read: a neighbor already reported its
   * share box as tampered, so it is out of the round (its upload would be refused when complete anyway).
   */
  refuseEarly(agentId: string): string | undefined {
    if (!this.server.isExcluded(agentId)) return undefined;
    this.refusedInputs++;
    return `secagg round: ${agentId} is dropped (a neighbor could not open its share box)`;
  }

  /** The round's counts for its record; `nameOf` turns agent ids into the names people know. */
  stats(nameOf: (id: string) => string = (id) => id): SecAggRoundStats {
    const s = this.server.stats();
    const p = this.params;
    const answered = this.sent.unmask;
    return {
      bits: p.bits,
      quantization: p.levels !== undefined ? 'int8' : 'ring',
      threshold: p.threshold,
      cohort: this.cohort.size,
      advertised: s.advertised.length,
      shared: s.shared.length,
      survivors: s.survivors.length,
      droppedBeforeInput: s.dropped.length,
      droppedBeforeShares: this.cohort.size - s.shared.length,
      // Only once the unmask stage ran is "no shares" a dropout after the input.
      droppedAfterInput: this.unmaskStarted !== undefined ? s.survivors.filter((a) => !answered.has(a)).length : 0,
      tampered: s.reported.map(nameOf),
      tamperedExcluded: s.excluded.map(nameOf),
      refusedInputs: this.refusedInputs,
      ...(this.unmaskStarted !== undefined && this.unmaskEnded !== undefined ? { unmaskSeconds: (this.unmaskEnded - this.unmaskStarted) / 1000 } : {}),
    };
  }

  /** An agent left the cohort: stages stop waiting for it. */
  agentOut(agentId: string): void {
    if (!this.cohort.has(agentId) || this.out.has(agentId)) return;
    this.out.add(agentId);
    this.maybeClose();
  }

  /** One stage message of a cohort agent; resolves when the stage is over. */
  async handle(req: SecAggRequestMsg): Promise<SecAggReplyMsg> {
    const id = req.agentId;
    if (!this.cohort.has(id)) return refused('unknown_task', `agent ${id} is not in the secure-aggregation cohort of round ${req.round}`);
    if (this.failure) return refused('round_failed', this.failure);
    let payload: unknown;
    try {
      payload = req.payloadJson ? JSON.parse(req.payloadJson) : undefined;
    } catch (err) {
      return refused('malformed', `payload_json: not JSON (${(err as Error).message})`);
    }
    try {
      switch (req.stage) {
        case 'advertise':
          return await this.advertise(id, payload);
        case 'share':
          return await this.share(id, payload);
        case 'survivors':
          return await this.survivors(id);
        case 'unmask':
          return this.unmask(id, payload);
        case 'report':
          return this.report(id, payload);
      }
      return refused('malformed', `stage: "${String(req.stage)}" is not a stage`);
    } catch (err) {
      if (err instanceof ValidationError) return refused('malformed', err.message);
      if (err instanceof SecAggError) return refused(REFUSAL_OF[err.kind], err.message);
      throw err;
    }
  }

  private advertise(id: string, payload: unknown): Promise<SecAggReplyMsg> | SecAggReplyMsg {
    if (this.phase !== 'advertise') return refused('stage_closed', `the advertise stage of this round is over (deadline ${new Date(this.deadlines.advertiseBy).toISOString()})`);
    if (this.sent.advertise.has(id)) return refused('duplicate', 'this agent already advertised its keys');
    this.server.collectAdvertise(id, (payload ?? {}) as SecAggAdvertise);
    this.sent.advertise.add(id);
    const p = this.hold('advertise', id);
    this.maybeClose();
    return p;
  }

  private share(id: string, payload: unknown): Promise<SecAggReplyMsg> | SecAggReplyMsg {
    if (this.phase === 'advertise') return refused('out_of_order', 'the advertise stage is still open');
    if (this.phase !== 'share') return refused('stage_closed', 'the share stage of this round is over');
    if (!this.answers.advertise.has(id)) return refused('stage_closed', 'this agent did not advertise keys in time');
    this.server.collectShares(id, (payload ?? {}) as SecAggShareKeys);
    this.sent.share.add(id);
    const p = this.hold('share', id);
    this.maybeClose();
    return p;
  }

  private survivors(id: string): Promise<SecAggReplyMsg> | SecAggReplyMsg {
    if (this.phase === 'unmask' || this.phase === 'done') {
      const a = this.answers.survivors.get(id);
      return a ? replyWith(a) : refused('stage_closed', 'nothing is asked of this agent in the unmask stage');
    }
    return this.hold('survivors', id);
  }

  private report(id: string, payload: unknown): SecAggReplyMsg {
    if (this.phase !== 'masked') return refused('stage_closed', `rejection reports are taken while masked inputs arrive; the round is at stage ${this.phase}`);
    const msg = parseOrThrow(secaggReportSchema, payload ?? {}, `secagg report from ${id}`);
    this.server.reportRejected(id, msg.rejected);
    this.log.warn({ agentId: id, rejected: msg.rejected }, 'secagg: an agent reports share boxes that did not open (tampered or forged); senders not yet in the sum are dropped');
    return replyWith(undefined);
  }

  private unmask(id: string, payload: unknown): SecAggReplyMsg {
    // The stage ended as soon as every secret had its threshold of shares: later ones are not needed (nor refused).
    if (this.phase === 'done') return { accepted: true, reason: '', message: 'not needed: the round already had enough shares', payloadJson: '' };
    if (this.phase !== 'unmask') return refused('out_of_order', `the round is at stage ${this.phase}, not unmask`);
    const msg = (payload ?? {}) as SecAggUnmask;
    this.server.collectUnmask(id, msg);
    this.sent.unmask.add(id);
    // Taken by the library, so well-formed and asked for: count what it brings towards each secret's threshold.
    for (const x of msg.bShares) this.missing?.b.set(x.owner, (this.missing.b.get(x.owner) ?? 0) - 1);
    for (const x of msg.sShares) this.missing?.s.set(x.owner, (this.missing.s.get(x.owner) ?? 0) - 1);
    this.maybeClose();
    return replyWith(undefined);
  }

  /** The masked-input stage is over (the round settled): ask for shares, wait for them (or the deadline), unmask. */
  async finish(): Promise<SecAggResult | { ok: false; reason: string }> {
    if (this.failure) return { ok: false, reason: this.failure };
    // A round that settled before its key stages closed (every agent failed early) closes them now.
    this.closeAdvertise();
    this.closeShare();
    if (this.failure) return { ok: false, reason: this.failure };
    const closed = this.server.closeMaskedInput();
    if (!closed.ok) return this.fail(closed.reason);
    this.phase = 'unmask';
    this.unmaskStarted = performance.now();
    const t = this.params.threshold;
    this.missing = { b: new Map(), s: new Map() };
    for (const [id, r] of closed.requests) {
      this.answers.survivors.set(id, r);
      for (const o of r.survivors) this.missing.b.set(o, t);
      for (const o of r.dropped) this.missing.s.set(o, t);
    }
    this.release('survivors');
    await new Promise<void>((resolve) => {
      this.unmaskDone = resolve;
      this.timers.push(setTimeout(resolve, this.deadlines.unmaskSeconds * 1000));
      this.maybeClose();
    });
    this.phase = 'done';
    this.dispose();
    // The mask removal runs on worker threads (seconds at 100 agents): uploads and stage calls keep being served.
    const result = await this.server.finalizeAsync();
    this.unmaskEnded = performance.now();
    if (!result.ok) this.failure = result.reason;
    return result;
  }

  /** Ends the round without a result (run stopped): held calls are answered, timers cleared. */
  abort(reason: string): void {
    if (this.phase === 'done') return;
    this.fail(reason);
  }

  private hold(stage: keyof SecAggRound['held'], id: string): Promise<SecAggReplyMsg> {
    return new Promise((resolve) => this.held[stage].set(id, resolve));
  }

  /** Answers every held call of a stage with its answer (or stage_closed for an agent the stage left out). */
  private release(stage: keyof SecAggRound['held']): void {
    for (const [id, resolve] of this.held[stage]) {
      const a = this.answers[stage].get(id);
      resolve(a !== undefined ? replyWith(a) : refused('stage_closed', `the ${stage} stage closed without this agent`));
    }
    this.held[stage].clear();
  }

  private inCohort(): string[] {
    return [...this.cohort].filter((id) => !this.out.has(id));
  }

  private maybeClose(): void {
    const live = this.inCohort();
    if (this.phase === 'advertise' && live.every((id) => this.sent.advertise.has(id))) this.closeAdvertise();
    if (this.phase === 'share' && live.filter((id) => this.answers.advertise.has(id)).every((id) => this.sent.share.has(id))) this.closeShare();
    if (this.phase !== 'unmask') return;
    const everyone = [...this.answers.survivors.keys()].filter((id) => !this.out.has(id)).every((id) => this.sent.unmask.has(id));
    // Every secret has its t shares: the holders still silent (dropouts) cannot change the result, so do not wait for them.
    const enough = this.missing !== undefined && [...this.missing.b.values(), ...this.missing.s.values()].every((n) => n <= 0);
    if (everyone || enough) this.unmaskDone?.();
  }

  private closeAdvertise(): void {
    if (this.phase !== 'advertise' || this.failure) return;
    const r = this.server.closeAdvertise();
    if (!r.ok) return void this.fail(r.reason);
    this.phase = 'share';
    for (const [id, req] of r.requests) this.answers.advertise.set(id, req);
    this.log.debug({ advertised: r.requests.size, cohort: this.cohort.size }, 'secagg: advertise stage closed');
    this.release('advertise');
    this.maybeClose();
  }

  private closeShare(): void {
    if (this.phase === 'advertise') this.closeAdvertise();
    if (this.phase !== 'share' || this.failure) return;
    const r = this.server.routeShares();
    if (!r.ok) return void this.fail(r.reason);
    this.phase = 'masked';
    for (const [id, routed] of r.routed) this.answers.share.set(id, routed);
    this.log.debug({ shared: r.routed.size, cohort: this.cohort.size }, 'secagg: share stage closed');
    this.release('share');
  }

  private fail(reason: string): { ok: false; reason: string } {
    if (!this.failure) {
      this.failure = reason;
      this.log.warn({ reason }, 'secagg: round failed');
      this.phase = 'done';
      this.dispose();
      for (const stage of ['advertise', 'share', 'survivors'] as const) {
        for (const resolve of this.held[stage].values()) resolve(refused('round_failed', reason));
        this.held[stage].clear();
      }
      this.unmaskDone?.();
      this.onFail(reason);
    }
    return { ok: false, reason: this.failure };
  }

  private dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
  }
}
