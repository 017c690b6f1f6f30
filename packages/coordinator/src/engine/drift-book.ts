/**
 * Data drift on the coordinator: agents' training profiles become the run's fleet reference (their sum, counts only,
 * stored with the run through its RunContext), which goes back to the run's serving agents in their report replies.
 */
import { createHash } from 'node:crypto';
import { sumProfiles, type DriftSection, type FleetReference, type ProfileSection, type ReportReplyBody } from '@fedge/proto';
import type { AgentRecord } from '../store/store.js';
import type { RunContext } from './run-context.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('drift');

/** The largest PSI of an agent's drift report over its features and predictions (0 when it has none): its band's figure. */
export function worstPsi(d: Pick<DriftSection, 'features' | 'prediction'>): number {
  return Math.max(0, ...d.features.map((r) => r.psi), ...d.prediction.map((r) => r.psi));
}

export interface DriftBookDeps {
  /** The run's context (the live engine's, or one around the stored record) and whether an engine still saves it. */
  runContext(runId: string): Promise<{ ctx: RunContext; live: boolean }>;
}

export class DriftBook {
  /** Fleet references by run, rebuilt when a profile of the run changes. */
  private readonly references = new Map<string, FleetReference | null>();

  constructor(private readonly deps: DriftBookDeps) {}

  /** An agent's training profile for a run: replaces its earlier one; saved now unless the run's engine saves it with its next round. */
  async noteProfile(agent: AgentRecord, p: ProfileSection): Promise<void> {
    const { ctx, live } = await this.deps.runContext(p.runId);
    const prev = ctx.run.driftProfiles?.[agent.name];
    if (prev && prev.round > p.round) return;
    ctx.setDriftProfile(agent.name, { round: p.round, at: new Date().toISOString(), profile: p.profile });
    this.references.delete(p.runId);
    if (!live) await ctx.persist();
    log.info({ runId: p.runId, agent: agent.name, round: p.round, examples: p.profile.examples, features: p.profile.features.length }, 'drift profile recorded');
  }

  /** The run's fleet reference (sum of its agents' profiles), or undefined when no agent has sent one. */
  async fleetReference(runId: string): Promise<FleetReference | undefined> {
    const cached = this.references.get(runId);
    if (cached !== undefined) return cached ?? undefined;
    // The record itself, where noteProfile writes: no copy and no version signatures, which a reference never needs.
    const { run } = (await this.deps.runContext(runId)).ctx;
    const entries = Object.entries(run.driftProfiles ?? {}).sort(([a], [b]) => a.localeCompare(b));
    if (entries.length === 0) {
      this.references.set(runId, null);
      return undefined;
    }
    const { profile, skipped } = sumProfiles(entries.map(([, r]) => r.profile));
    if (skipped.length) log.warn({ runId, skipped }, 'drift: agents\' profiles disagree on the bins of these features; left out of the fleet reference');
    const key = createHash('sha256').update(JSON.stringify(entries.map(([name, r]) => [name, r.round, r.at]))).digest('hex').slice(0, 16);
    const ref: FleetReference = { runId, key, agents: entries.length, profile };
    this.references.set(runId, ref);
    return ref;
  }

  /** What a serving agent's report reply carries: the fleet reference of the run it serves, when it holds another. */
  async replyFor(runId: string, heldKey: string | undefined): Promise<ReportReplyBody> {
    const ref = await this.fleetReference(runId).catch(() => undefined);
    return ref && ref.key !== heldKey ? { fleetReference: ref } : {};
  }
}
