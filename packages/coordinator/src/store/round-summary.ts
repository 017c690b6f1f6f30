/**
 * A round's participants in a few numbers: what a round record carries instead of its participant list, so a run
 * record's size does not grow with participants per round (issue 16). The list itself is in the store
 * (Store.listParticipants) and `fedge run participants` pages it.
 */
import type { Participant, ParticipantOutcome, RoundRecord } from './store.js';

/** Rounds of at most this many participants still show their list in `fedge run show` (and --format json). */
export const INLINE_PARTICIPANTS = 100;

/** The bounds of fedge_update_seconds (metrics.ts): a summary keeps its completed participants' latency on them. */
export const LATENCY_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600] as const;

/** Distinct failure reasons a summary keeps (the most frequent first); the rest are counted in otherReasons. */
const MAX_REASONS = 10;

/** An aggregator site among a root's participants (fedge serve --upstream): its own round's figures. */
export interface SiteSummary {
  name: string;
  outcome: ParticipantOutcome;
  /** Completed and invited agents of the site's round (site_participants, site_invited). */
  agents?: number;
  invited?: number;
  examples?: number;
  reason?: string;
}

export interface RoundSummary {
  /** Participants recorded for the round (invitees, and late ones folded in). */
  participants: number;
  outcomes: Partial<Record<ParticipantOutcome, number>>;
  /** Training examples of the completed participants. */
  examples: number;
  /** Task latency (task sent to result) of the completed participants, in seconds. */
  seconds?: { p50: number; p95: number; max: number; mean: number };
  /** The same latencies per LATENCY_BUCKETS bucket (+Inf last): how many and their sum (fedge_update_seconds). */
  latency?: { count: number; sum: number }[];
  /** Why participants did not complete, by outcome and reason (up to its first ';'), most frequent first. */
  reasons: { outcome: ParticipantOutcome; reason: string; count: number }[];
  otherReasons?: number;
  /** Rejected participants by reason code (fedge_rejected_updates_total). */
  rejected?: Record<string, number>;
  /** Distinct dataset fingerprints among the completed participants (data lineage). */
  datasets?: number;
  /** Aggregator sites, when the participants are sites. */
  sites?: SiteSummary[];
}

/** The reason code of a rejected participant ("non_finite: update has NaN" -> "non_finite"), bounded for labels. */
export function reasonCode(reason: string | undefined): string {
  const m = /^([a-z][a-z0-9_]{0,63})(?::|$)/.exec(reason ?? '');
  return m ? m[1]! : 'other';
}

/** Whether a participant is an aggregator site: its result carries its round's counts, or its failure names its sub-run. */
export function isSite(p: Participant): boolean {
  return p.metrics?.site_participants !== undefined || /\bsite \S+: sub-run /.test(p.reason ?? '');
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function summarize(participants: readonly Participant[]): RoundSummary {
  const outcomes: RoundSummary['outcomes'] = {};
  const reasons = new Map<string, { outcome: ParticipantOutcome; reason: string; count: number }>();
  const rejected: Record<string, number> = {};
  const secs: number[] = [];
  const fingerprints = new Set<string>();
  const sites: SiteSummary[] = [];
  let examples = 0;
  for (const p of participants) {
    outcomes[p.outcome] = (outcomes[p.outcome] ?? 0) + 1;
    if (p.outcome === 'completed') {
      examples += p.numExamples ?? 0;
      if (p.seconds !== undefined && Number.isFinite(p.seconds)) secs.push(p.seconds);
      if (p.fingerprint) fingerprints.add(p.fingerprint);
    } else {
      // The first clause: later ones are notes (what became of a late result) that would split one cause in many.
      const reason = (p.reason ?? p.outcome).split(';')[0]!.trim().slice(0, 120);
      const key = `${p.outcome}\0${reason}`;
      const e = reasons.get(key) ?? { outcome: p.outcome, reason, count: 0 };
      e.count++;
      reasons.set(key, e);
      if (p.outcome === 'rejected') rejected[reasonCode(p.reason)] = (rejected[reasonCode(p.reason)] ?? 0) + 1;
    }
    if (isSite(p)) {
      const m = p.metrics ?? {};
      sites.push({
        name: p.name, outcome: p.outcome,
        ...(m.site_participants !== undefined ? { agents: m.site_participants } : {}),
        ...(m.site_invited !== undefined ? { invited: m.site_invited } : {}),
        ...(p.numExamples !== undefined ? { examples: p.numExamples } : {}),
        ...(p.reason ? { reason: p.reason } : {}),
      });
    }
  }
  const sorted = [...reasons.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  const out: RoundSummary = { participants: participants.length, outcomes, examples, reasons: sorted.slice(0, MAX_REASONS) };
  const other = sorted.slice(MAX_REASONS).reduce((n, e) => n + e.count, 0);
  if (other) out.otherReasons = other;
  if (Object.keys(rejected).length) out.rejected = rejected;
  if (secs.length) {
    secs.sort((a, b) => a - b);
    const sum = secs.reduce((s, x) => s + x, 0);
    out.seconds = { p50: quantile(secs, 0.5), p95: quantile(secs, 0.95), max: secs.at(-1)!, mean: sum / secs.length };
    const latency = [...LATENCY_BUCKETS, Infinity].map(() => ({ count: 0, sum: 0 }));
    for (const s of secs) {
      const b = latency[bucketOf(s)]!;
      b.count++;
      b.sum += s;
    }
    out.latency = latency;
  }
  if (fingerprints.size) out.datasets = fingerprints.size;
  if (sites.length) out.sites = sites;
  return out;
}

function bucketOf(s: number): number {
  const i = LATENCY_BUCKETS.findIndex((le) => s <= le);
  return i < 0 ? LATENCY_BUCKETS.length : i;
}

/** A round's summary: the one it carries, or one computed from the inline list of a record written before summaries. */
export function roundSummary(r: Pick<RoundRecord, 'summary' | 'participants'>): RoundSummary {
  return r.summary ?? summarize(r.participants ?? []);
}

/** How many of the round's participants completed, and how many were recorded. */
export function completedOf(r: Pick<RoundRecord, 'summary' | 'participants'>): { completed: number; total: number } {
  const s = roundSummary(r);
  return { completed: s.outcomes.completed ?? 0, total: s.participants };
}

/** What a view says of a round whose list is not inline: where to page it. */
export function participantsNote(runId: string, round: number, total: number): string {
  return `${total} participants (more than ${INLINE_PARTICIPANTS}, not listed here): fedge run participants ${runId} --round ${round} [--status failed] [--limit 100]`;
}

/** Whether an outcome passes a ParticipantQuery's status filter ('failed': anything but completed). */
export function statusMatches(outcome: ParticipantOutcome, status: ParticipantOutcome | 'failed' | undefined): boolean {
  return status === undefined || (status === 'failed' ? outcome !== 'completed' : outcome === status);
}

/** Appends a note to a participant's reason (a late result's fate), as the round record always spelled it. */
export function withNote(p: Participant, note: string): Participant {
  return { ...p, reason: `${p.reason ?? 'late'}; ${note}` };
}
