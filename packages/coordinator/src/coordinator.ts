/** The coordinator: runs, agents and models behind one object that transports and the CLI call. */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { DiskSpool } from './engine/update-spool.js';
import { NotFoundError, type AgentReportMsg, type ReportReplyMsg, type JoinRequestMsg, type ModelBlob, type ResultHeaderMsg, type SecAggReplyMsg, type SecAggRequestMsg, RejectedUpdateError, type StorageError } from '@fedge/proto';
import { parseRunConfig, type RunConfig } from './config/run-config.js';
import type { AgentRecord, Participant, RunRecord, Store } from './store/store.js';
import type { ParticipantListing } from './engine/participants-view.js';
import { RunViews, engineView, type RunView } from './engine/run-views.js';
import { MemoryStore } from './store/memory-store.js';
import { ModelRetention, type GcResult } from './engine/retention.js';
import { DEFAULT_KEEP_LAST, type KeepLast } from './config/retention.js';
import { AgentRegistry, type AgentChannel } from './engine/agent-registry.js';
import { RunEngine } from './engine/run-engine.js';
import type { GlobalModel } from './engine/global-model.js';
import { ModelDownloads } from './engine/model-downloads.js';
import type { PromoteOptions } from './engine/promotion.js';
import type { CanaryController } from './engine/canary-controller.js';
import { Promoter, type Promoted } from './engine/promoter.js';
import type { UploadSink } from './engine/upload.js';
import { createStrategy } from './strategy/index.js';
import type { Strategy } from './strategy/strategy.js';
import { RunContext } from './engine/run-context.js';
import { centralEvaluator, initialModel, precheckEvaluation, precheckModel, saveFinalModel } from './engine/ml-hooks.js';
import { eligibleFor, needsDataStep } from './engine/data-step.js';
import { PreparingRuns } from './engine/prepare.js';
import { moduleLogger } from './log.js';
import { mlflowTarget, trackRun, type MlflowTracker } from './tracking/index.js';
import { ModelSigner } from './signing-key.js';
import { IdentityRegistry, type JoinCredentials } from './engine/identities.js';
import { IdentityGate } from './engine/identity-gate.js';
import type { JoinLimits } from './engine/join-limits.js';
import { ReportDispatcher } from './engine/reports.js';
import { registerReportHandlers } from './engine/report-handlers.js';
import { DriftBook } from './engine/drift-book.js';

export interface CoordinatorOptions {
  store?: Store;
  dataDir: string;
  joinToken?: string;
  /** The store is durable: close() leaves active runs to be resumed by resumeRuns() in the next process. */
  resumeOnRestart?: boolean;
  /** Signs every model a task names (`fedge serve`: the data dir's key); default: an ephemeral key. */
  signer?: ModelSigner;
  /** Join rate limits and the shared token's registration cap (default DEFAULT_JOIN_LIMITS). */
  joinLimits?: JoinLimits;
  /** MLflow tracking server every run is logged to unless its config's tracking.mlflow names another (fedge serve --mlflow-tracking-uri). */
  mlflowTrackingUri?: string;
  /** Versions of each run whose weights the store keeps besides pinned ones, unless the run's config says (fedge serve --keep-versions). */
  keepLast?: KeepLast;
}

export type { RunView } from './engine/run-views.js';

const log = moduleLogger('coordinator');

export class Coordinator {
  readonly store: Store;
  readonly registry: AgentRegistry;
  readonly signer: ModelSigner;
  /** Per-device identities (enrollment, signed joins and updates, revocation) and the join limits. */
  readonly gate: IdentityGate;
  /** Self-healing canaries: judged on agents' health reports, rolled back or completed by themselves. */
  readonly canaries: CanaryController;
  /** Promotions, rollbacks, canary ends and the run config's gate, and their announcements (engine/promoter.ts). */
  private readonly promoter: Promoter;
  /** Agent status reports: section -> handler (report-handlers.ts registers them). */
  readonly reports: ReportDispatcher;
  /** Data drift: agents' training profiles, the fleet reference per run (engine/drift-book.ts). */
  readonly drift: DriftBook;
  private readonly engines = new Map<string, RunEngine>();
  /** Model retention: frees old versions' weights after each round and on `fedge model gc` (engine/retention.ts). */
  readonly retention: ModelRetention;
  /** Live MLflow tracking of runs (tracking/), flushed when the coordinator closes. */
  private readonly trackers: MlflowTracker[] = [];
  /** Exactly the model version a task or an admin names, and strategy blobs (engine/model-downloads.ts). */
  private readonly models: ModelDownloads;
  /** Runs in their statistics step (no engine yet). */
  private readonly preparing: PreparingRuns;
  /** What admins and watchers see of runs, and their participants' pages (engine/run-views.ts). */
  private readonly views: RunViews;
  /** The first failed write of the data directory: from then on new work is refused with it (E_STORAGE). */
  private storageFailure: StorageError | undefined;

  constructor(private readonly opts: CoordinatorOptions) {
    this.store = opts.store ?? new MemoryStore();
    this.signer = opts.signer ?? ModelSigner.ephemeral();
    this.registry = new AgentRegistry(this.store, opts.joinToken);
    this.gate = new IdentityGate(new IdentityRegistry(this.store), this.registry, opts.joinLimits);
    this.promoter = new Promoter({
      registry: this.registry,
      signer: this.signer,
      runContext: (id) => this.runContext(id),
      storedVersion: (run, version) => this.models.stored(run, version),
      listRuns: () => this.listRuns(),
    });
    this.canaries = this.promoter.canaries;
    this.reports = new ReportDispatcher(this.registry);
    this.drift = new DriftBook({
      runContext: async (id) => {
        const { ctx, engine } = await this.runContext(id);
        return { ctx, live: !!engine && !engine.isFinished() };
      },
    });
    registerReportHandlers(this.reports, { registry: this.registry, canaries: this.canaries, drift: this.drift });
    this.retention = new ModelRetention({
      store: this.store,
      defaultKeepLast: opts.keepLast ?? DEFAULT_KEEP_LAST,
      served: (runId) => this.registry.servedVersions(runId),
      liveShas: () => new Set([...this.engines.values()].flatMap((e) => e.run.versions.filter((v) => !v.collected).map((v) => v.sha256))),
    });
    this.models = new ModelDownloads({ store: this.store, engines: this.engines, retention: this.retention });
    this.preparing = new PreparingRuns({ registry: this.registry, resumeOnRestart: opts.resumeOnRestart ?? false, launch: (ctx, blob) => this.launch(ctx, blob), strategyFor: (c) => this.strategyFor(c), onStorageFault: (f) => this.onStorageFault(f) });
    this.views = new RunViews({ store: this.store, engines: this.engines, preparing: this.preparing, signer: this.signer, canaries: this.canaries });
    this.registry.on('offline', (agentId, reason) => {
      for (const e of this.engines.values()) e.agentGone(agentId, reason);
    });
    // An agent that (re)connects gets the promoted version of every run that has one (its canary version if it is a canary agent).
    this.registry.on('online', (agentId) => void this.promoter.announceTo(agentId));
  }

  /**
   * Validates the config, builds the initial model (version 0) and starts the run in the background. `initial` gives
   * version 0 instead (an aggregator site's sub-run starts from the root's version; the config's model is not built).
   */
  async startRun(configInput: unknown, initial?: ModelBlob): Promise<RunView> {
    this.refuseIfStorageFailed();
    const config = parseRunConfig(configInput);
    // The built-in MLP is sized from the data, so it is made by the statistics step; other models load now (fail fast).
    const blob = initial ?? await initialModel(config);
    if (blob && !initial) await precheckModel(config, blob);
    await precheckEvaluation(config);
    const run: RunRecord = {
      id: `run-${randomUUID().slice(0, 8)}`,
      config,
      status: 'pending',
      createdAt: new Date().toISOString(),
      round: 0,
      modelVersion: 0,
      rounds: [],
      versions: [],
    };
    await this.store.createRun(run);
    const ctx = new RunContext(run, this.store);
    log.info({ runId: run.id, model: config.model, rounds: config.rounds }, 'run started');
    if (needsDataStep(config)) {
      this.preparing.start(ctx, blob);
      return structuredClone(run);
    }
    const engine = await this.launch(ctx, blob!);
    return engineView(engine);
  }

  /** The run's strategy (the registry's, wrapped in DP when the run is private). */
  private strategyFor(config: RunConfig): Strategy {
    return createStrategy(config, { populationSize: () => this.registry.size });
  }

  /** Builds the run's strategy and engine and starts it from the run's current round and `blob` (its latest version). */
  private async launch(ctx: RunContext, blob: ModelBlob): Promise<RunEngine> {
    const run = ctx.run;
    const config = run.config;
    const evaluateCentral = await centralEvaluator(config, run.data);
    // The engine attaches the strategy to the run context, which restores its saved state (a resumed private run's accountant).
    const engine = new RunEngine(ctx, blob, {
      store: this.store,
      registry: this.registry,
      signModel: (ref) => this.signer.sign(ref),
      strategy: this.strategyFor(config),
      ...(evaluateCentral ? { evaluateCentral } : {}),
      saveFinalModel: (r, b) => saveFinalModel(this.opts.dataDir, r, b),
      ...(run.data ? { eligible: eligibleFor(run.data, this.registry) } : {}),
      // A durable store gets a durable spool: accepted updates survive a crash and are folded in a fixed order.
      ...(this.opts.resumeOnRestart ? { spool: new DiskSpool(path.resolve(this.opts.dataDir, 'updates')) } : {}),
      // Otherwise a robust strategy's round keeps its updates here until the round is folded.
      scratchDir: path.resolve(this.opts.dataDir, 'tmp'),
      onStorageFault: (f) => this.onStorageFault(f),
      afterVersion: async (c) => void (await this.retention.collect(c)),
    });
    this.engines.set(run.id, engine);
    const target = mlflowTarget(config, this.opts.mlflowTrackingUri);
    // Attached before execute() so the first round's metrics are seen; the tracker never delays the run.
    if (target) this.trackers.push(trackRun(engine, target));
    // execute() never rejects (failures end up in the run record); a bug that made it would be logged, not fatal.
    engine.execute().catch((err: unknown) => log.error({ runId: run.id, err }, 'run engine failed'));
    if (config.promotion?.auto) engine.once('end', () => void this.promoter.runGate(run.id));
    return engine;
  }

  /**
   * Resumes the runs a previous coordinator process left active (status pending, waiting or running): each starts
   * again at the round after its last completed one, from the stored model of its latest version. A sync round that
   * was in progress when the process died continues: the updates it had accepted (spooled before their
   * acknowledgement) are kept and their agents are not asked again; the others get the same tasks again (same seeds).
   * An async run folds its saved buffer back in.
   */
  async resumeRuns(): Promise<RunView[]> {
    const resumed: RunView[] = [];
    const stored = await this.store.listRuns();
    // Self-healing canaries in progress (usually of finished runs): their timers again, from the stored deadline.
    for (const run of stored) if (run.promotion?.canary?.auto) this.canaries.watch(run, true);
    for (const run of stored) {
      if (!['pending', 'waiting', 'running'].includes(run.status) || this.engines.has(run.id) || this.preparing.has(run.id)) continue;
      const ctx = new RunContext(run, this.store);
      const fail = async (message: string): Promise<void> => {
        ctx.fail('failed', message);
        await ctx.persist();
        log.error({ runId: run.id, round: run.round }, message);
      };
      // The strategy says which of its saved state it needs (a private run's accountant, a server optimizer's moments).
      const blocker = this.strategyFor(run.config).resumeBlocker?.(ctx.strategyState(), { modelVersion: run.modelVersion, roundsDone: run.rounds.length });
      if (blocker) {
        await fail(`coordinator restarted: ${blocker}, so it cannot be resumed`);
        continue;
      }
      ctx.trimToSaved();
      const v = run.versions.find((x) => x.version === run.modelVersion);
      let blob: ModelBlob | undefined;
      try {
        blob = v ? await this.store.getModel(v.sha256) : run.modelVersion === 0 ? await initialModel(run.config, run.data) : undefined;
      } catch (err) {
        await fail(`coordinator restarted: the model of version ${run.modelVersion} cannot be read: ${(err as Error).message}`);
        continue;
      }
      if (!run.data && needsDataStep(run.config) && run.modelVersion === 0) {
        ctx.setMessage('resumed after a coordinator restart: statistics step again');
        this.preparing.start(ctx, blob);
        resumed.push(structuredClone(run));
        continue;
      }
      if (!blob) {
        await fail(`coordinator restarted: the model of version ${run.modelVersion} is missing from the store`);
        continue;
      }
      ctx.setMessage(`resumed after a coordinator restart at round ${run.round + 1} from version ${run.modelVersion}`);
      await ctx.persist();
      const engine = await this.launch(ctx, blob);
      log.info({ runId: run.id, round: run.round, version: run.modelVersion }, `run resumed after restart: last completed round ${run.round}, version ${run.modelVersion}; a round in progress keeps the updates it had accepted and sends its task again only to agents it had none from`);
      resumed.push(engineView(engine));
    }
    return resumed;
  }

  async stopRun(id: string): Promise<RunView> {
    const stopped = await this.preparing.stop(id);
    if (stopped) return stopped;
    const e = this.engines.get(id);
    if (!e) {
      const r = await this.store.getRun(id);
      if (!r) throw new NotFoundError(`run "${id}" not found; see fedge run list`);
      return r;
    }
    e.stop();
    return engineView(e);
  }

  getRun(id: string): Promise<RunView> {
    return this.views.getRun(id);
  }

  /** getRun for `fedge run show`: rounds of up to INLINE_PARTICIPANTS participants list them (participants-view.ts). */
  showRun(id: string): Promise<RunView> {
    return this.views.showRun(id);
  }

  /** `fedge run participants`: a page of a run's participants; `query` is network input, checked here. */
  listParticipants(runId: string, query: unknown): Promise<ParticipantListing> {
    return this.views.listParticipants(runId, query);
  }

  /** Every participant of one round (a site's sub-run), page by page. */
  roundParticipants(runId: string, round: number): Promise<Participant[]> {
    return this.views.roundParticipants(runId, round);
  }

  listRuns(): Promise<RunView[]> {
    return this.views.listRuns();
  }

  /** Brings back the agents the store knows (all offline until they reconnect); returns how many. */
  async restoreAgents(): Promise<number> {
    await this.gate.identities.restore();
    return this.registry.restore(await this.store.listAgents());
  }

  listAgents(): AgentRecord[] {
    return this.registry.list();
  }

  /** Calls `fn` whenever the run changes (`view()` builds the copy); returns an unsubscribe function. */
  watchRun(id: string, fn: (view: () => RunView, ended: boolean) => void): () => void {
    return this.views.watchRun(id, fn);
  }

  /** Resolves when the run ends. */
  waitForRun(id: string): Promise<RunView> {
    return this.views.waitForRun(id);
  }

  // ---- agent-facing operations (transport-agnostic) ----

  /** Registers the agent; the reply carries the model signing public key, which agents without --coordinator-key pin. */
  async join(req: JoinRequestMsg & JoinCredentials, source: string): Promise<{ agentId: string; sessionToken: string; modelSigningKey: string }> {
    return { ...(await this.gate.join(req, source)), modelSigningKey: this.signer.publicKeyPem };
  }

  openTasks(agentId: string, sessionToken: string, channel: AgentChannel): void {
    this.registry.verify(agentId, sessionToken);
    this.registry.attach(agentId, channel);
  }

  closeTasks(agentId: string, channel: AgentChannel, reason: string): void {
    this.registry.detach(agentId, channel, reason);
  }

  /**
   * Exactly version `version` of a run (0 is the initial model, never "latest": an agent must get the model its
   * task names). Versions no longer held in memory, or of a finished run, come from the store.
   */
  async fetchModel(runId: string, version: number, blobSha256 = ''): Promise<{ model: GlobalModel; engine?: RunEngine }> {
    return this.models.fetch(runId, version, blobSha256);
  }

  /** The live run's context (the engine's, so its own saves keep the promotion) or one around the stored record. */
  private async runContext(runId: string): Promise<{ ctx: RunContext; engine?: RunEngine }> {
    const e = this.engines.get(runId);
    if (e) return { ctx: e.ctx, engine: e };
    const run = await this.store.getRun(runId);
    if (!run) throw new NotFoundError(`run "${runId}" not found; see fedge run list`);
    return { ctx: new RunContext(run, this.store) };
  }

  /**
   * Promotes `opts.version` of a run: serving agents switch to it (with `canary`, a seeded fraction of the online
   * agents first, recorded in the run). Gated: its accuracy must reach the current promoted version's + margin
   * unless `force`. The first promotion ends "follow latest" for the run's serving agents.
   */
  async promoteModel(runId: string, opts: PromoteOptions): Promise<RunView> {
    return this.promotedView(await this.promoter.promote(runId, opts));
  }

  /**
   * `fedge model gc`: applies retention to one run or all (keepLast: the run's own setting unless given), and
   * finishes deletions an earlier pass left (a crash between marking and deleting).
   */
  async gcModels(opts: { runId?: string; keepLast?: KeepLast; dryRun?: boolean }): Promise<GcResult[]> {
    // All runs: the listed records themselves (a live run's engine context), not a second read of each one.
    const contexts = opts.runId !== undefined
      ? [(await this.runContext(opts.runId)).ctx]
      : (await this.store.listRuns()).map((r) => this.engines.get(r.id)?.ctx ?? new RunContext(r, this.store));
    const out: GcResult[] = [];
    for (const ctx of contexts) {
      out.push(await this.retention.collect(ctx, { ...(opts.keepLast !== undefined ? { keepLast: opts.keepLast } : {}), dryRun: !!opts.dryRun, retry: true }));
    }
    return out;
  }

  /** Returns serving agents to the previous promoted version, or withdraws an open canary. */
  async rollbackModel(runId: string): Promise<RunView> {
    return this.promotedView(await this.promoter.rollback(runId));
  }

  private promotedView({ ctx, engine }: Promoted): RunView {
    return engine ? engineView(engine) : structuredClone(ctx.run);
  }

  /** For admin downloads: the run's latest global model when `version` is 0, else exactly that version. */
  async runModel(runId: string, version = 0): Promise<GlobalModel> {
    return this.models.latestOr(runId, version);
  }

  /**
   * A header that failed validation still names an agent and task: if its session token is valid,
   * the rejection is recorded as that agent's failure so the round does not wait for it.
   */
  recordMalformed(raw: unknown, reason: string, message: string): void {
    const h = (raw ?? {}) as Partial<Record<'agentId' | 'sessionToken' | 'runId' | 'taskId', unknown>>;
    if (typeof h.agentId !== 'string' || typeof h.sessionToken !== 'string' || typeof h.runId !== 'string' || typeof h.taskId !== 'string') return;
    try {
      this.registry.verify(h.agentId, h.sessionToken);
    } catch {
      return;
    }
    this.engines.get(h.runId)?.rejectTask(h.agentId, h.taskId, reason, message);
  }

  /** A secure-aggregation stage message of an agent's task (engine/secagg-round.ts); the reply waits for the stage to close. */
  async secagg(req: SecAggRequestMsg): Promise<SecAggReplyMsg> {
    this.refuseIfStorageFailed();
    this.registry.verify(req.agentId, req.sessionToken);
    const e = this.engines.get(req.runId);
    if (!e) return { accepted: false, reason: 'unknown_task', message: `run_id: run "${req.runId}" is not active`, payloadJson: '' };
    return e.secagg(req);
  }

  /**
   * An agent's status report (served version, drift, health): every section goes to its handler; the reply carries
   * what the coordinator has for the agent. Refused (E_AUTH, E_VALIDATION) before any handler runs. The session token
   * is the authentication, as for SecAgg: an enrolled agent's session came from a join signed with its key.
   */
  async report(req: AgentReportMsg): Promise<ReportReplyMsg> {
    return { bodyJson: JSON.stringify(await this.reports.dispatch(req)) };
  }

  async beginUpload(h: ResultHeaderMsg): Promise<UploadSink> {
    this.refuseIfStorageFailed();
    const agent = this.registry.verify(h.agentId, h.sessionToken);
    const e = this.engines.get(h.runId);
    if (!e) throw new RejectedUpdateError('unknown_run', `run_id: run "${h.runId}" is not active`);
    return this.gate.guardUpload(h, agent.name, await e.beginUpload(h));
  }

  /** The error new work is refused with once the data directory could not be written (undefined while it can). */
  get storageError(): StorageError | undefined {
    return this.storageFailure;
  }

  private refuseIfStorageFailed(): void {
    if (this.storageFailure) throw this.storageFailure;
  }

  /**
   * A write of the data directory failed: every run is suspended (left resumable in the store, which holds its last
   * saved round) and new runs and uploads are refused, until an operator frees space and restarts the coordinator.
   */
  private onStorageFault(fault: StorageError): void {
    if (this.storageFailure) return;
    this.storageFailure = fault;
    log.error(
      { code: fault.code, path: fault.path, freeBytes: fault.freeBytes, runs: [...this.engines.keys()] },
      `${fault.code}: ${fault.message} New runs and uploads are refused; active runs are suspended and resume on restart.`,
    );
    for (const e of this.engines.values()) e.suspend(fault);
  }

  async close(): Promise<void> {
    this.canaries.close();
    try {
      await this.closeRuns();
    } finally {
      // What the tracking servers have not taken yet gets a few seconds (a run's end, its artifacts), then is dropped.
      await Promise.all(this.trackers.map((t) => t.flush(5_000)));
      for (const t of this.trackers) t.close();
    }
  }

  private async closeRuns(): Promise<void> {
    await this.preparing.close();
    const active = [...this.engines.values()].filter((e) => !e.isFinished());
    const ended = active.map((e) => new Promise<void>((r) => (e.isFinished() ? r() : e.once('end', () => r()))));
    for (const e of this.engines.values()) e.stop('coordinator shutting down');
    this.registry.closeAll('coordinator shutting down');
    if (!this.opts.resumeOnRestart || active.length === 0) return;
    // A durable store: leave the runs active so the next coordinator on this data directory resumes them.
    await Promise.race([Promise.all(ended), new Promise((r) => setTimeout(r, 15_000).unref())]);
    for (const e of active) {
      // The stored record (what the engine last saved), not the engine's: the next process resumes from the store.
      const run = await this.store.getRun(e.run.id);
      if (!run || run.status !== 'stopped') continue;
      const stored = new RunContext(run, this.store);
      stored.markResumable(`interrupted by a coordinator shutdown after round ${run.round}; resumes when the coordinator restarts`);
      try {
        await stored.persist();
      } catch (err) {
        // Its stored record says stopped: it will not resume by itself (fedge run list shows it).
        log.error({ runId: run.id, err }, 'could not leave the run to resume on restart');
        continue;
      }
      log.info({ runId: run.id, round: run.round }, 'run left to resume on restart');
    }
  }
}

