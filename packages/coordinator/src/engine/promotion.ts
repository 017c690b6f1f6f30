/**
 * Model promotion: a per-run "promoted" pointer that serving agents follow instead of every new version.
 * Pure decisions (evaluation gate, canary selection, the next promotion state) live here so they are unit-tested
 * without a coordinator; the coordinator persists the result in the run record and sends the announcements.
 */
import { createRng, ValidationError } from '@fedge/proto';
import type { ModelVersionRecord, PromotionState, RunRecord } from '../store/store.js';
import { thresholdsOf, type CanaryAutoOptions } from './canary.js';

export interface PromoteOptions {
  version: number;
  /** Announce to this fraction (0 < F < 1) of online agents first; the rest keep the previous promoted version. */
  canary?: number;
  /** The candidate must reach the current promoted version's accuracy + margin (default 0). */
  margin?: number;
  /** Skip the evaluation gate. */
  force?: boolean;
  /** Reason recorded in history. */
  at?: string;
  /**
   * Self-healing canary (needs `canary`): every online agent serves the version to `canary` of its requests beside the
   * stable one and reports health; rolled back at once on a crossed threshold, completed after the window.
   */
  auto?: CanaryAutoOptions;
}

export interface OnlineAgent { id: string; name: string }

/** A version's accuracy for the gate: federated when measured, else central; undefined when neither is known. */
export function versionAccuracy(v: ModelVersionRecord | undefined): number | undefined {
  return v?.federatedAccuracy ?? v?.centralAccuracy;
}

/** Throws a ValidationError naming both figures when `candidate` does not clear `current` + margin. */
export function checkGate(run: RunRecord, candidate: number, current: number | undefined, margin = 0): void {
  if (current === undefined || current === candidate) return;
  const c = run.versions.find((v) => v.version === candidate);
  const p = run.versions.find((v) => v.version === current);
  const ca = versionAccuracy(c);
  const pa = versionAccuracy(p);
  const f = (x: number | undefined): string => (x === undefined ? 'unknown' : `${(x * 100).toFixed(2)}%`);
  if (pa === undefined) return; // nothing to compare against: the current one was never evaluated
  if (ca === undefined || ca < pa + margin - 1e-12) // tolerance: 0.8 + 0.05 is 0.8500000000000001
    throw new ValidationError(
      `evaluation gate: version ${candidate} has accuracy ${f(ca)}, below version ${current}'s ${f(pa)} + margin ${f(margin)}; promote a better version or pass --force`,
    );
}

/** A seeded, stable choice of ceil(fraction * n) (at least 1) of `agents`. */
export function selectCanary(agents: OnlineAgent[], fraction: number, seed: number): OnlineAgent[] {
  if (!(fraction > 0 && fraction < 1)) throw new ValidationError(`--canary must be a fraction in (0, 1), got ${fraction}`);
  const sorted = [...agents].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  const rng = createRng(seed);
  for (let i = sorted.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [sorted[i], sorted[j]] = [sorted[j]!, sorted[i]!];
  }
  const k = Math.min(sorted.length, Math.max(1, Math.ceil(fraction * sorted.length)));
  return sorted.slice(0, k).sort((a, b) => a.name.localeCompare(b.name));
}

export interface PromotionPlan {
  state: PromotionState;
  /** Who is told: every online agent (undefined) or only these agent ids. */
  announceTo?: string[];
  /** A self-healing canary: agents get `stable` first, then the version with this A/B split. */
  split?: { stable: number; fraction: number };
}

/**
 * The promotion state after promoting `opts.version` given the online agents. Promoting the version that is the
 * current canary without --canary completes its rollout (no gate: it was gated when the canary started).
 */
export function planPromotion(run: RunRecord, online: OnlineAgent[], opts: PromoteOptions): PromotionPlan {
  const at = opts.at ?? new Date().toISOString();
  if (!run.versions.some((v) => v.version === opts.version))
    throw new ValidationError(`run ${run.id} has no version ${opts.version} (versions ${run.versions[0]?.version ?? '-'}..${run.versions.at(-1)?.version ?? '-'}); see fedge model list --run ${run.id}`);
  if (opts.version === 0) throw new ValidationError('version 0 is the untrained initial model; promote a trained version');
  if (opts.margin !== undefined && !(opts.margin >= 0 && opts.margin <= 1)) throw new ValidationError(`--margin must be in [0, 1], got ${opts.margin}`);
  const prev = run.promotion;
  const history = [...(prev?.history ?? [])];
  const completing = prev?.canary?.version === opts.version && opts.canary === undefined;
  if (!completing && !opts.force) checkGate(run, opts.version, prev?.version, opts.margin ?? 0);
  if (opts.auto) {
    if (opts.canary === undefined || !(opts.canary > 0 && opts.canary < 1)) throw new ValidationError(`--auto needs --canary F with 0 < F < 1 (the fraction of requests the candidate answers), got ${opts.canary ?? 'none'}`);
    if (prev?.canary) throw new ValidationError(`run ${run.id} already has a canary of version ${prev.canary.version}; complete it (fedge model promote ${prev.canary.version}) or roll it back first`);
    // The stable side: the promoted version, or (first promotion) the latest, which agents following the run serve.
    const stable = prev?.version ?? run.versions.at(-1)?.version;
    if (stable === undefined || stable === opts.version)
      throw new ValidationError(`version ${opts.version} is already what serving agents of ${run.id} get; a canary needs another stable version (promote it without --canary)`);
    if (online.length === 0) throw new ValidationError('--canary: no agents are online to receive the canary');
    const agents = [...online].sort((a, b) => a.name.localeCompare(b.name));
    const startedAt = at;
    const deadline = new Date(Date.parse(at) + opts.auto.windowMs).toISOString();
    history.push({ action: 'canary', version: opts.version, at, fraction: opts.canary, agents: agents.map((a) => a.name), auto: true, ...(opts.force ? { forced: true } : {}) });
    return {
      state: {
        version: stable,
        ...(prev?.version !== undefined && prev.previous !== undefined ? { previous: prev.previous } : {}),
        canary: {
          version: opts.version, fraction: opts.canary, agents: agents.map((a) => a.id), agentNames: agents.map((a) => a.name),
          auto: { stable, windowMs: opts.auto.windowMs, startedAt, deadline, thresholds: thresholdsOf(opts.auto) },
        },
        ...(prev?.lastCanary ? { lastCanary: prev.lastCanary } : {}),
        history,
      },
      announceTo: agents.map((a) => a.id),
      split: { stable, fraction: opts.canary },
    };
  }
  if (opts.canary !== undefined) {
    const chosen = selectCanary(online, opts.canary, run.config.seed * 31 + opts.version);
    if (chosen.length === 0) throw new ValidationError('--canary: no agents are online to receive the canary');
    history.push({ action: 'canary', version: opts.version, at, fraction: opts.canary, agents: chosen.map((a) => a.name), ...(opts.force ? { forced: true } : {}) });
    return {
      state: {
        ...(prev?.version !== undefined ? { version: prev.version } : {}),
        ...(prev?.previous !== undefined ? { previous: prev.previous } : {}),
        canary: { version: opts.version, fraction: opts.canary, agents: chosen.map((a) => a.id), agentNames: chosen.map((a) => a.name) },
        history,
      },
      announceTo: chosen.map((a) => a.id),
    };
  }
  history.push({ action: 'promote', version: opts.version, at, ...(opts.force ? { forced: true } : {}) });
  const previous = prev?.version !== undefined && prev.version !== opts.version ? prev.version : prev?.previous;
  return { state: { version: opts.version, ...(previous !== undefined ? { previous } : {}), ...(prev?.lastCanary ? { lastCanary: prev.lastCanary } : {}), history } };
}

/**
 * Rollback: an open canary is withdrawn (its agents get the promoted version back); otherwise the previous
 * promoted version becomes current again and every agent is told.
 */
export function planRollback(run: RunRecord, at = new Date().toISOString()): PromotionPlan & { version: number } {
  const p = run.promotion;
  if (!p) throw new ValidationError(`run ${run.id} has no promoted version to roll back; see fedge model promote --help`);
  const history = [...p.history];
  if (p.canary) {
    if (p.version === undefined) throw new ValidationError(`run ${run.id}: the canary of version ${p.canary.version} has no earlier promoted version to return to`);
    history.push({ action: 'rollback', version: p.version, at, from: p.canary.version });
    return { version: p.version, state: { version: p.version, ...(p.previous !== undefined ? { previous: p.previous } : {}), ...(p.lastCanary ? { lastCanary: p.lastCanary } : {}), history }, announceTo: p.canary.agents };
  }
  if (p.previous === undefined || p.version === undefined) throw new ValidationError(`run ${run.id}: version ${p.version ?? '-'} is the first promotion; there is no previous version to roll back to`);
  history.push({ action: 'rollback', version: p.previous, at, from: p.version });
  // The previous of the restored version is the one promoted before it in history, if any.
  const before = [...history].reverse().find((h) => h.action !== 'canary' && h.version !== p.previous && h.version !== p.version)?.version;
  return { version: p.previous, state: { version: p.previous, ...(before !== undefined ? { previous: before } : {}), history } };
}

/**
 * The end of a self-healing canary: `completed` promotes its version to every agent, `rolled-back` returns its agents
 * to the stable version; either way the history entry and lastCanary say why (the verdict's reason and figures).
 */
export function planCanaryEnd(run: RunRecord, outcome: 'completed' | 'rolled-back', reason: string, at = new Date().toISOString()): PromotionPlan & { version: number } {
  const c = run.promotion?.canary;
  if (!c?.auto) throw new ValidationError(`run ${run.id} has no self-healing canary in progress`);
  const plan = outcome === 'completed' ? { ...planPromotion(run, [], { version: c.version, at }), version: c.version } : planRollback(run, at);
  const last = plan.state.history.at(-1)!;
  Object.assign(last, { auto: true, reason });
  plan.state.lastCanary = { version: c.version, outcome, reason, at };
  return plan;
}
