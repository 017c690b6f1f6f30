/**
 * Model promotion's effects: records promotions, rollbacks, canary ends and the run config's gate in the run and
 * tells serving agents (promotion.ts and promotion-gate.ts decide; canary-controller.ts watches self-healing canaries).
 */
import type { RunRecord } from '../store/store.js';
import type { AgentRegistry } from './agent-registry.js';
import { CanaryController } from './canary-controller.js';
import type { GlobalModel } from './global-model.js';
import { gateCanaryOptions, judgePromotionGate } from './promotion-gate.js';
import { planCanaryEnd, planPromotion, planRollback, type PromoteOptions, type PromotionPlan } from './promotion.js';
import type { RunContext } from './run-context.js';
import type { RunEngine } from './run-engine.js';
import { TaskFactory } from './tasks.js';
import type { ModelSigner } from '../signing-key.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('coordinator');

export interface PromoterDeps {
  registry: AgentRegistry;
  signer: ModelSigner;
  /** The live run's context (the engine's, so its own saves keep the promotion) or one around the stored record. */
  runContext(runId: string): Promise<{ ctx: RunContext; engine?: RunEngine }>;
  /** Exactly `version` of the run as agents download it; throws NotFoundError (naming retention) when it is gone. */
  storedVersion(run: Readonly<RunRecord>, version: number): Promise<GlobalModel>;
  /** Every run, oldest first (read once, for the runs that have a promotion). */
  listRuns(): Promise<readonly Readonly<Pick<RunRecord, 'id' | 'promotion'>>[]>;
}

/** The run changed by a promotion, and its engine while it is active (for the caller's view of it). */
export interface Promoted { ctx: RunContext; engine?: RunEngine }

export class Promoter {
  /** Self-healing canaries: judged on agents' health reports, rolled back or completed by themselves. */
  readonly canaries: CanaryController;
  /**
   * Ids of the runs that have a promotion, which every (re)connecting agent is told about: listed from the store once,
   * then kept here, the only writer of promotions, so an agent's connection does not read every run.
   */
  private promotedRuns: Promise<Set<string>> | undefined;

  constructor(private readonly deps: PromoterDeps) {
    this.canaries = new CanaryController({ end: (runId, outcome, reason) => this.endCanary(runId, outcome, reason) });
  }

  /**
   * Promotes `opts.version` of a run: serving agents switch to it (with `canary`, a seeded fraction of the online
   * agents first, recorded in the run). Gated: its accuracy must reach the current promoted version's + margin
   * unless `force`. The first promotion ends "follow latest" for the run's serving agents.
   */
  async promote(runId: string, opts: PromoteOptions): Promise<Promoted> {
    const found = await this.deps.runContext(runId);
    const run = found.ctx.run;
    const live = this.deps.registry.list().filter((a) => a.status === 'online');
    // A self-healing canary splits requests on the agents that serve this run (all online ones if none reported yet).
    const serving = opts.auto ? live.filter((a) => a.servedRun === runId) : [];
    const online = (serving.length ? serving : live).map((a) => ({ id: a.id, name: a.name }));
    const plan = planPromotion(run, online, opts);
    await this.deps.storedVersion(run, opts.version); // fail before recording a version agents could not fetch
    // Promoting over a self-healing canary (completing it by hand, or another version) ends its watch.
    this.canaries.unwatch(runId);
    found.ctx.setPromotion(plan.state);
    await found.ctx.persist();
    // A listing that failed is read again (from the store, which has this promotion) by the next reconnect.
    await this.promoted().then((ids) => void ids.add(runId), () => undefined);
    const told = plan.split ? await this.announceCanary(run, opts.version, plan.split, plan.announceTo ?? []) : await this.announcePromoted(run, opts.version, plan.announceTo);
    if (plan.split) this.canaries.watch(run);
    log.info({ runId, version: opts.version, canary: plan.state.canary?.agentNames, told }, plan.announceTo ? 'model canary started' : 'model promoted');
    return found;
  }

  /** Returns serving agents to the previous promoted version, or withdraws an open canary. */
  async rollback(runId: string): Promise<Promoted> {
    const found = await this.deps.runContext(runId);
    const run = found.ctx.run;
    const plan = planRollback(run);
    await this.deps.storedVersion(run, plan.version);
    this.canaries.unwatch(runId);
    found.ctx.setPromotion(plan.state);
    await found.ctx.persist();
    const told = await this.announcePromoted(run, plan.version, plan.announceTo);
    log.info({ runId, version: plan.version, told }, 'model rolled back');
    return found;
  }

  /**
   * The run config's promotion gate at the run's end ("evaluate, then register if good, else alert"): the best version
   * goes out through a self-healing canary if it reaches promotion.minMetric; otherwise the failure is recorded (fedge
   * run show, fedge_promotion_gate_failed{run}) and logged as an error naming the figure.
   */
  async runGate(runId: string): Promise<void> {
    try {
      const { ctx } = await this.deps.runContext(runId);
      const run = ctx.run;
      const p = run.config.promotion;
      if (!p?.auto || run.status !== 'completed' || run.promotionGate) return;
      const gate = judgePromotionGate(run);
      if (gate.passed) {
        try {
          await this.promote(runId, { version: gate.version!, canary: p.canary, auto: gateCanaryOptions(run), force: true });
          gate.message += `; self-healing canary: ${Math.round(p.canary * 100)}% of requests for ${p.window}`;
        } catch (err) {
          // No canary to run (no serving agent online, or agents already serve that version): promote it outright.
          await this.promote(runId, { version: gate.version!, force: true });
          gate.message += `; promoted without a canary (${(err as Error).message})`;
        }
      }
      ctx.setPromotionGate(gate);
      await ctx.persist();
      if (gate.passed) log.info({ runId, version: gate.version, metric: gate.metric, value: gate.value, min: gate.min }, gate.message);
      else log.error({ runId, version: gate.version, metric: gate.metric, value: gate.value, min: gate.min }, gate.message);
    } catch (err) {
      log.error({ runId, err: (err as Error).message }, 'promotion gate could not run');
    }
  }

  /** An agent that (re)connects gets the promoted version of every run that has one (its canary version if it is a canary agent). */
  async announceTo(agentId: string): Promise<void> {
    try {
      for (const runId of await this.promoted()) {
        const run = (await this.deps.runContext(runId)).ctx.run;
        const p = run.promotion;
        if (!p) continue;
        const auto = p.canary?.auto;
        if (auto && p.canary!.agents.includes(agentId)) {
          await this.announceCanary(run, p.canary!.version, { stable: auto.stable, fraction: p.canary!.fraction }, [agentId]);
          continue;
        }
        const v = p.canary?.agents.includes(agentId) ? p.canary.version : p.version;
        if (v !== undefined) await this.announcePromoted(run, v, [agentId]);
      }
    } catch (err) {
      log.warn({ agentId, err: (err as Error).message }, 'announcing promoted versions to a reconnected agent failed');
    }
  }

  /** Ends a self-healing canary (the controller's verdict): rolls its agents back to the stable version, or completes it. */
  private async endCanary(runId: string, outcome: 'completed' | 'rolled-back', reason: string): Promise<void> {
    const { ctx } = await this.deps.runContext(runId);
    const run = ctx.run;
    if (!run.promotion?.canary?.auto) return;
    const candidate = run.promotion.canary.version;
    const plan = planCanaryEnd(run, outcome, reason);
    ctx.setPromotion(plan.state);
    await ctx.persist();
    const told = await this.announcePromoted(run, plan.version, plan.announceTo);
    if (outcome === 'rolled-back') log.warn({ runId, candidate, stable: plan.version, told, reason }, `canary of version ${candidate} rolled back: ${reason}`);
    else log.info({ runId, version: candidate, told, reason }, `canary of version ${candidate} completed: ${reason}`);
  }

  /** Tells serving agents (all online ones, or `only`) to serve `version` of the run. */
  private async announcePromoted(run: Readonly<RunRecord>, version: number, only?: readonly string[]): Promise<number> {
    const g = await this.deps.storedVersion(run, version);
    const round = run.versions.find((v) => v.version === version)?.round ?? 0;
    const task = this.tasks(run).promote(g, round);
    return this.deps.registry.announce(task, only);
  }

  /**
   * A self-healing canary's announcements: the stable version first (agents that follow the latest version may serve
   * another), then the candidate with the A/B split, so each agent serves both and compares them on its own traffic.
   */
  private async announceCanary(run: Readonly<RunRecord>, version: number, split: NonNullable<PromotionPlan['split']>, only: readonly string[]): Promise<number> {
    const factory = this.tasks(run);
    const roundOf = (v: number): number => run.versions.find((x) => x.version === v)?.round ?? 0;
    // stable_version on the stable's own promote marks it as a canary's stable side: an agent already serving the
    // split keeps it (and its health window) instead of swapping back.
    this.deps.registry.announce({ ...factory.promote(await this.deps.storedVersion(run, split.stable), roundOf(split.stable)), stableVersion: split.stable }, only);
    const task = factory.promote(await this.deps.storedVersion(run, version), roundOf(version));
    return this.deps.registry.announce({ ...task, canaryFraction: split.fraction, stableVersion: split.stable }, only);
  }

  private promoted(): Promise<Set<string>> {
    this.promotedRuns ??= this.deps.listRuns().then(
      (runs) => new Set(runs.filter((r) => r.promotion).map((r) => r.id)),
      (err: unknown) => {
        this.promotedRuns = undefined;
        throw err;
      },
    );
    return this.promotedRuns;
  }

  private tasks(run: Readonly<RunRecord>): TaskFactory {
    return new TaskFactory(run, { signModel: (ref) => this.deps.signer.sign(ref) });
  }
}
