/** The only writer of a run's record: named transitions on the in-memory RunRecord and one persist() that saves it. */
import type { DriftProfileRecord, OpenRoundState, Participant, ParticipantPage, ParticipantQuery, ParticipantWrites, PromotionGateRecord, PromotionState, RoundRecord, RunData, RunRecord, RunStatus, Store } from '../store/store.js';
import { statusMatches, summarize, withNote } from '../store/round-summary.js';
import type { ModelBlob } from '@fedge/proto';
import { stateBlobRefs, type StateBlob, type Strategy, type StrategyState } from '../strategy/strategy.js';
import type { GlobalModel } from './global-model.js';

/** How long an accepted update waits for others to share its save (an fsync takes about as long). */
const GROUP_COMMIT_MS = 50;

/** Central evaluation of one version, as a version record and a round record both carry it. */
export interface CentralEval {
  loss: number;
  accuracy: number;
  metrics: Record<string, number>;
}

/**
 * Everything that changes a run record goes through here, so one file answers "who sets this field" and every save
 * carries the strategy's state. The engine, the coordinator (promotion, resume, shutdown) and the statistics step
 * read `run`; none of them assign to it.
 */
/** The part of a strategy's state saved as soon as it changes (privacy accounting); see StrategyState. */
function liveOf(state: StrategyState): StrategyState {
  return state.privacyState ? { privacyState: state.privacyState } : {};
}

/** The part saved with the record of the version it produced (server optimizer state). */
function versionedOf(state: StrategyState): StrategyState {
  const { privacyState: _live, ...rest } = state;
  return rest;
}

export class RunContext {
  private strategy: Strategy | undefined;
  /** The live state as last saved (JSON), to know whether a release must save it first. */
  private savedLive = '';
  /** The versioned state that produced the record's modelVersion (what every save writes), and its blobs. */
  private committed: { state: StrategyState; blobs: StateBlob[] } = { state: {}, blobs: [] };
  /** The versioned state of the newest version made, committed when that version's record is. */
  private staged: { version: number; state: StrategyState; blobs: StateBlob[] } | undefined;
  /** Blobs known to be in the store. */
  private readonly storedBlobs = new Set<string>();
  /**
   * Participant lists of rounds recorded since the last save, and notes on rounds saved before: written with the
   * next save, in its transaction, and then dropped: the record keeps only each round's summary.
   */
  private pending: ParticipantWrites = { rounds: [], notes: [] };

  constructor(
    private readonly record: RunRecord,
    private readonly store: Store,
  ) {}

  /** The record, read-only for callers (transitions below are the writers). */
  get run(): Readonly<RunRecord> {
    return this.record;
  }

  get id(): string {
    return this.record.id;
  }

  /** The strategy state the record holds (StrategyState's fields; a strategy with new state adds its field here). */
  strategyState(): StrategyState {
    return {
      ...(this.record.privacyState ? { privacyState: this.record.privacyState } : {}),
      ...(this.record.serverOptState ? { serverOptState: this.record.serverOptState } : {}),
      ...(this.record.scaffoldState ? { scaffoldState: this.record.scaffoldState } : {}),
    };
  }

  /**
   * The strategy whose state (StrategyState fields) is saved with every persist. A resumed run's saved state is
   * restored into it first, so it continues where the previous process stopped. State without blobs is restored
   * before this returns; state naming blobs (server optimizer moments) once they are read from the store.
   */
  attachStrategy(strategy: Strategy): Promise<void> {
    this.strategy = strategy;
    const saved = this.strategyState();
    const refs = stateBlobRefs(saved);
    const finish = (blobs: ReadonlyMap<string, ModelBlob>): void => {
      if (Object.keys(saved).length) strategy.restore?.(saved, blobs);
      for (const sha of refs) this.storedBlobs.add(sha);
      const now = strategy.snapshot?.() ?? {};
      this.committed = { state: versionedOf(now), blobs: strategy.stateBlobs?.() ?? [] };
      this.savedLive = JSON.stringify(liveOf(now));
    };
    if (refs.length === 0) {
      finish(new Map());
      return Promise.resolve();
    }
    return (async () => {
      const blobs = new Map<string, ModelBlob>();
      for (const sha of refs) {
        const blob = await this.store.getModel(sha);
        if (!blob) throw new Error(`the strategy state ${sha} this run saved is missing from the store; the run cannot resume`);
        blobs.set(sha, blob);
      }
      finish(blobs);
    })();
  }

  /** The save that persistSoon() callers share, scheduled and not yet started. */
  private batch: Promise<void> | undefined;
  private lastBatch = 0;

  /**
   * persist() as a group commit: saves start at most every GROUP_COMMIT_MS (the first after a quiet spell on the
   * next turn), and every caller until a save starts shares it (a window, not one turn: over MQTT every upload ends
   * in its own turn), so each still resolves only once its change is durable, but a round's N accepted updates cost
   * a few writes of the record instead of N (each of which rewrote the growing list of accepted updates).
   */
  persistSoon(): Promise<void> {
    this.batch ??= new Promise<void>((resolve, reject) =>
      setTimeout(() => {
        this.batch = undefined;
        this.lastBatch = Date.now();
        // Accepting updates changes the open round only: the rounds (each with its participants) are not re-serialized.
        this.persist(true).then(resolve, reject);
      }, Math.max(0, this.lastBatch + GROUP_COMMIT_MS - Date.now())),
    );
    return this.batch;
  }

  /** Saves the record: the strategy's live state as it is now, its versioned state as of the record's version. */
  async persist(docOnly = false): Promise<void> {
    const state = this.strategy?.snapshot?.();
    const live = state ? liveOf(state) : {};
    if (state) {
      await this.storeBlobs(this.committed.blobs);
      Object.assign(this.record, live, this.committed.state);
    }
    const writes = this.pending;
    const any = writes.rounds.length > 0 || writes.notes.length > 0;
    // A recorded round changes the rounds: never a doc-only save then.
    if (any) this.pending = { rounds: [], notes: [] };
    try {
      await this.store.saveRun(this.record, docOnly && writes.rounds.length === 0, any ? writes : undefined);
    } catch (err) {
      // Not written: they go with the next save (before anything pending since).
      if (any) this.pending = { rounds: [...writes.rounds, ...this.pending.rounds], notes: [...writes.notes, ...this.pending.notes] };
      throw err;
    }
    this.savedLive = JSON.stringify(live);
  }

  /** A page of the run's participants: the store's, and those of rounds recorded but not saved yet. */
  async listParticipants(q: ParticipantQuery): Promise<ParticipantPage> {
    const unsaved = this.pending.rounds.filter((w) => q.round === undefined || w.round === q.round);
    const notes = this.pending.notes.filter((n) => q.round === undefined || n.round === q.round);
    if (unsaved.length === 0 && notes.length === 0) return this.store.listParticipants(this.record.id, q);
    // Rare (between a round's end, or a late result's note, and the next save): the whole filter over both, in round order.
    const stored = await this.store.listParticipants(this.record.id, { ...q, offset: 0, limit: Number.MAX_SAFE_INTEGER });
    const mine = new Set(unsaved.map((w) => w.round));
    const noted = (p: Participant & { round: number }): Participant & { round: number } =>
      notes.reduce((x, n) => (n.round === x.round && n.agentId === x.agentId ? { ...withNote(x, n.note), round: x.round } : x), p);
    const rows = [
      ...stored.participants.filter((p) => !mine.has(p.round)).map(noted),
      ...unsaved.flatMap((w) => w.participants.filter((p) => statusMatches(p.outcome, q.status)).map((p) => ({ ...structuredClone(p), round: w.round }))),
    ].sort((a, b) => a.round - b.round);
    return { total: rows.length, participants: rows.slice(q.offset, q.offset + q.limit) };
  }

  /**
   * Called when a version is made (before its record): the strategy state that produced it, saved with that record
   * (recordRound commits it). Until then saves keep the previous version's state, so a resumed run's model and
   * server state always match.
   */
  stageStrategyState(version: number): void {
    if (!this.strategy?.snapshot) return;
    this.staged = { version, state: versionedOf(this.strategy.snapshot()), blobs: this.strategy.stateBlobs?.() ?? [] };
  }

  /**
   * Called before a new version is released (announced, served): the strategy state that produced it must be durable
   * first. Model-sized state (the staged blobs) is written to the model store; the live state (privacy accounting) is
   * saved with the record if it changed. A crash after this but before the round's record is saved redoes the round
   * and accounts it again, so epsilon may be over-reported then, never under-reported; the server optimizer resumes
   * from the state of the record's version and redoes its step bit for bit.
   */
  async persistStrategyState(): Promise<void> {
    if (!this.strategy?.snapshot) return;
    if (this.staged) await this.storeBlobs(this.staged.blobs);
    if (JSON.stringify(liveOf(this.strategy.snapshot())) !== this.savedLive) await this.persist();
  }

  private async storeBlobs(blobs: readonly StateBlob[]): Promise<void> {
    for (const b of blobs) {
      if (this.storedBlobs.has(b.sha256)) continue;
      await this.store.putModel(b.sha256, b.blob);
      this.storedBlobs.add(b.sha256);
    }
  }

  // ---------------------------------------------------------------- status

  setStatus(status: RunStatus, message?: string): void {
    this.record.status = status;
    if (message !== undefined) this.record.statusMessage = message;
  }

  setMessage(message: string): void {
    this.record.statusMessage = message;
  }

  /** Rounds begin: the first start is kept when a stored run is resumed. */
  begin(): void {
    this.record.startedAt ??= new Date().toISOString();
  }

  /** The run is over: where its final model is (if saved) and when it ended. */
  finish(modelPath?: string): void {
    if (modelPath !== undefined) this.record.modelPath = modelPath;
    this.record.endedAt = new Date().toISOString();
  }

  /** Ends a run that cannot go on (statistics step failed, resume impossible). */
  fail(status: 'failed' | 'stopped', message: string): void {
    this.setStatus(status, message);
    this.finish();
  }

  /** A shutdown with a durable store: the run stays active so the next coordinator process resumes it. */
  markResumable(message: string): void {
    delete this.record.endedAt;
    this.setStatus('running', message);
  }

  /** After a restart: only versions and rounds a saved round produced count; anything newer belongs to the interrupted round. */
  trimToSaved(): void {
    this.record.versions = this.record.versions.filter((v) => v.version <= this.record.modelVersion);
    this.record.rounds = this.record.rounds.filter((r) => r.round <= this.record.round);
  }

  // ---------------------------------------------------------------- statistics step and serving

  /** The statistics step's result, and the strategy state it already spent (the noised statistics' privacy step). */
  setData(data: RunData, state?: StrategyState): void {
    this.record.data = data;
    if (state) Object.assign(this.record, state);
  }

  /** An agent's training profile for drift (replaces its earlier one; saved with the next persist). */
  setDriftProfile(agentName: string, rec: DriftProfileRecord): void {
    (this.record.driftProfiles ??= {})[agentName] = rec;
  }

  setPromotion(state: PromotionState): void {
    this.record.promotion = state;
  }

  setPromotionGate(gate: PromotionGateRecord): void {
    this.record.promotionGate = gate;
  }

  // ---------------------------------------------------------------- rounds and versions

  /** Async: the K that async.bufferSize "auto" resolved to, kept in the run's config (saved with the next persist). */
  chooseBufferSize(k: number): void {
    this.record.config.async.bufferSize = k;
  }

  /** The round (sync) or buffer (async) in progress, saved so a restarted coordinator continues it; undefined when it ends. */
  setOpenRound(state: OpenRoundState | undefined): void {
    if (state) this.record.openRound = state;
    else delete this.record.openRound;
  }

  /** An update accepted into the open round (its spooled file named, so a restart folds it back in). */
  acceptUpdate(entry: OpenRoundState['accepted'][number]): void {
    this.record.openRound?.accepted.push(entry);
  }

  /** Registers a new global version (once). */
  publishVersion(g: GlobalModel, round: number): void {
    if (this.record.versions.some((v) => v.version === g.version)) return;
    this.record.versions.push({
      version: g.version,
      sha256: g.sha256,
      round,
      ...(g.version > 0 ? { parent: g.version - 1 } : {}),
      createdAt: new Date().toISOString(),
    });
  }

  /** Model retention: these versions' weights are about to be deleted (persist before deleting them). */
  markCollected(versions: readonly number[], keepLast: number | 'all'): void {
    const at = new Date().toISOString();
    for (const v of this.record.versions) if (versions.includes(v.version) && !v.collected) v.collected = { at, keepLast };
  }

  /** A version's central evaluation (version 0's is recorded without its metrics' accuracy fallback, as it always was). */
  setCentral(version: number, ev: CentralEval): void {
    const rec = this.record.versions.find((v) => v.version === version);
    if (rec) Object.assign(rec, { centralLoss: ev.loss, centralMetrics: ev.metrics, ...(Number.isFinite(ev.accuracy) ? { centralAccuracy: ev.accuracy } : {}) });
  }

  /** Initial model: central loss, accuracy and the task's metrics of version 0. */
  setInitialCentral(ev: { loss: number; accuracy: number; metrics?: Record<string, number> }): void {
    const v0 = this.record.versions.find((v) => v.version === 0);
    if (!v0) return;
    v0.centralLoss = ev.loss;
    if (Number.isFinite(ev.accuracy)) v0.centralAccuracy = ev.accuracy;
    if (ev.metrics) v0.centralMetrics = ev.metrics;
  }

  /** Federated evaluation of a version so far (agents report it as they train from it); returns the round that produced it. */
  setFederated(version: number, combined: Record<string, number>, examples: number): RoundRecord | undefined {
    const acc = combined.accuracy;
    const v = this.record.versions.find((x) => x.version === version);
    if (v) Object.assign(v, { federatedMetrics: combined, ...(acc !== undefined ? { federatedAccuracy: acc } : {}) });
    const rec = this.record.rounds.find((x) => x.version === version);
    if (rec) Object.assign(rec, { federatedLoss: combined.loss, federatedMetrics: combined, federatedExamples: examples, ...(acc !== undefined ? { federatedAccuracy: acc } : {}) });
    return rec;
  }

  /**
   * A finished round (sync) or published step (async): its record, with the summary of `participants`, joins the run,
   * which now stands at `modelVersion`; the list itself is saved apart with the next persist.
   */
  recordRound(record: RoundRecord, modelVersion: number, participants: readonly Participant[] = record.participants ?? []): void {
    const { participants: _inline, ...rest } = record;
    const rec: RoundRecord = { ...rest, summary: summarize(participants) };
    this.pending.rounds = [...this.pending.rounds.filter((w) => w.round !== rec.round), { round: rec.round, participants: [...participants] }];
    this.record.rounds.push(rec);
    this.record.rounds.sort((a, b) => a.round - b.round);
    this.record.round = Math.max(this.record.round, record.round);
    this.record.modelVersion = modelVersion;
    // The strategy state that made this version is saved with it from now on.
    if (this.staged && this.staged.version <= modelVersion) {
      this.committed = { state: this.staged.state, blobs: this.staged.blobs };
      this.staged = undefined;
    }
  }

  /** Appends what became of a late participant to its entry in the round it was invited to. */
  noteLateOutcome(round: number, agentId: string, what: string): void {
    const unsaved = this.pending.rounds.find((w) => w.round === round);
    if (unsaved) {
      const i = unsaved.participants.findIndex((x) => x.agentId === agentId);
      if (i >= 0) unsaved.participants[i] = withNote(unsaved.participants[i]!, what);
    } else if (this.record.rounds.some((x) => x.round === round)) this.pending.notes.push({ round, agentId, note: what });
  }

  reachTarget(t: NonNullable<RunRecord['reachedTarget']>): void {
    this.record.reachedTarget = t;
  }
}
