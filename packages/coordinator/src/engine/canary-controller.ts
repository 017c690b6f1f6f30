/**
 * Watches self-healing canaries: keeps each serving agent's latest health evidence for a run's canary, judges it on
 * every report (judgeCanary) and at the end of the window, and asks the coordinator to roll back at once when a
 * threshold is crossed or to complete the rollout when the window passed. The canary itself (versions, thresholds,
 * deadline) is in the run record, so a restarted coordinator re-arms its timers from the store (rearm()).
 */
import type { HealthSection } from '@fedge/proto';
import type { CanaryAutoState, RunRecord } from '../store/store.js';
import { moduleLogger } from '../log.js';
import { describeFigures, judgeCanary, type AgentEvidence, type CanaryVerdict, type VersionFigures } from './canary.js';
import { versionAccuracy } from './promotion.js';

const log = moduleLogger('canary');

/** After a restart the agents need a moment to reconnect and report before an expired window is judged. */
export const REARM_GRACE_MS = 5_000;

/** One agent's health report for a run, as the report handler passes it on (figures per served version). */
export interface HealthReport {
  runId: string;
  versions: (VersionFigures & { version: number })[];
}

/** The agent's `health` report section as canary evidence (NaN/Inf outputs count as errors); none without a run. */
export function healthReport(h: HealthSection): HealthReport | undefined {
  if (!h.runId) return undefined;
  return {
    runId: h.runId,
    versions: h.versions.map((v) => ({
      version: v.version,
      requests: v.requests - (v.invalid ?? 0),
      errors: v.errors + (v.nan ?? 0),
      ...(v.requests > 0 && v.p99Ms > 0 ? { p99Ms: v.p99Ms } : {}),
      ...(v.predictionHistogram ? { classes: v.predictionHistogram } : {}),
      ...(v.scalar ? { scalar: v.scalar } : {}),
      ...(v.accuracy !== undefined ? { accuracy: v.accuracy } : {}),
    })),
  };
}

export interface CanaryHost {
  /** Ends the canary of `runId` (persist, announce, log); called once per canary. */
  end(runId: string, outcome: 'completed' | 'rolled-back', reason: string): Promise<void>;
}

interface Watched {
  candidate: number;
  auto: CanaryAutoState;
  agents: Set<string>;
  /** Candidate minus stable accuracy from the run's own evaluations (used when agents report none). */
  runAccuracyDelta: number | undefined;
  evidence: Map<string, AgentEvidence>;
  timer: NodeJS.Timeout;
  last?: CanaryVerdict;
}

export class CanaryController {
  private readonly watched = new Map<string, Watched>();

  constructor(private readonly host: CanaryHost) {}

  /** Starts (or restarts) watching the run's canary if it is a self-healing one; `restarted`: a grace before judging an expired window. */
  watch(run: Readonly<RunRecord>, restarted = false): void {
    this.unwatch(run.id);
    const c = run.promotion?.canary;
    if (!c?.auto) return;
    const due = Date.parse(c.auto.deadline) - Date.now();
    const delay = Math.max(restarted ? REARM_GRACE_MS : 0, due);
    const acc = (v: number): number | undefined => versionAccuracy(run.versions.find((x) => x.version === v));
    const ca = acc(c.version);
    const sa = acc(c.auto.stable);
    const timer = setTimeout(() => void this.judge(run.id, 'window'), delay);
    timer.unref();
    this.watched.set(run.id, { candidate: c.version, auto: c.auto, agents: new Set(c.agents), runAccuracyDelta: ca !== undefined && sa !== undefined ? ca - sa : undefined, evidence: new Map(), timer });
    log.info({ runId: run.id, candidate: c.version, stable: c.auto.stable, fraction: c.fraction, deadline: c.auto.deadline, inMs: delay, restarted }, restarted ? 'canary re-armed after restart' : 'canary watching');
    // Accuracy is known before any traffic: a candidate already worse than allowed is rolled back at once.
    if (!restarted) queueMicrotask(() => void this.judge(run.id, 'report'));
  }

  unwatch(runId: string): void {
    const w = this.watched.get(runId);
    if (w) clearTimeout(w.timer);
    this.watched.delete(runId);
  }

  /** The figures last judged for a run's canary (fedge model show while it runs). */
  status(runId: string): { verdict: CanaryVerdict['state']; figures: string; reason?: string } | undefined {
    const v = this.watched.get(runId)?.last;
    return v && { verdict: v.state, figures: describeFigures(v.figures), ...(v.state === 'failing' ? { reason: v.reason } : {}) };
  }

  /** An agent's health report: its evidence replaces the agent's previous one, then the canary is judged. */
  onHealth(agent: { id: string; name: string }, h: HealthReport): void {
    const w = this.watched.get(h.runId);
    if (!w) return;
    const cand = h.versions.find((v) => v.version === w.candidate);
    const stab = h.versions.find((v) => v.version === w.auto.stable);
    if (!cand && !stab) return;
    w.evidence.set(agent.name, { agent: agent.name, ...(cand ? { candidate: cand } : {}), ...(stab ? { stable: stab } : {}) });
    void this.judge(h.runId, 'report');
  }

  private async judge(runId: string, why: 'report' | 'window'): Promise<void> {
    const w = this.watched.get(runId);
    if (!w) return;
    const v = judgeCanary([...w.evidence.values()], w.auto.thresholds, w.runAccuracyDelta);
    w.last = v;
    if (v.state !== 'failing' && why === 'report') return;
    this.unwatch(runId);
    const figures = describeFigures(v.figures);
    const outcome = v.state === 'failing' ? 'rolled-back' : 'completed';
    const window = `${Math.round(w.auto.windowMs / 1000)} s`;
    const reason =
      v.state === 'failing' ? `${v.reason}; ${figures}`
      : v.state === 'healthy' ? `healthy for the ${window} window: ${figures}`
      : `no threshold crossed in the ${window} window, on little traffic (fewer than ${w.auto.thresholds.minRequests} candidate requests): ${figures}`;
    try {
      await this.host.end(runId, outcome, reason);
    } catch (err) {
      log.error({ runId, outcome, err: (err as Error).message }, 'could not end the canary');
    }
  }

  close(): void {
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }
}
