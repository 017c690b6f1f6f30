/**
 * Self-healing canaries, the pure part: thresholds, the health evidence agents report for a candidate beside the
 * stable version, and the verdict (roll back now / healthy / not enough traffic yet). The coordinator's controller
 * (canary-controller.ts) feeds reports in, keeps the timers and acts on the verdict; this file decides.
 */
import { z } from 'zod';
import { ValidationError, formatZodError } from '@fedge/proto';

/** What makes a canary fail; any one figure over its limit rolls it back at once. */
export interface CanaryThresholds {
  /** Candidate errors (5xx, NaN/Inf outputs) over candidate requests. */
  maxErrorRate: number;
  /** Candidate p99 latency over the stable version's on the same agent (median over agents). */
  maxLatencyRatio: number;
  /** Prediction drift of the candidate against the stable version: PSI of the predicted classes beyond sampling noise (psiExcess; classification), or the shift of the mean output in stable standard deviations (one output). */
  maxDrift: number;
  /** Candidate accuracy minus stable accuracy must be at least this (e.g. -0.02); agents' labelled holdouts, else the run's evaluations. */
  minAccuracyDelta?: number;
  /** Candidate requests (over all agents) before error rate and drift are judged: a single early error is not a rate. */
  minRequests: number;
}

export const DEFAULT_THRESHOLDS: CanaryThresholds = { maxErrorRate: 0.05, maxLatencyRatio: 3, maxDrift: 0.25, minRequests: 20 };

/** "90s", "10m", "1h", "1500ms" or a bare number of seconds. */
export function parseDuration(v: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
  if (!m) throw new ValidationError(`${what}: "${v}" is not a duration; use e.g. 30s, 10m, 1h`);
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  if (!(n >= 1000 && n <= 7 * 24 * 3_600_000)) throw new ValidationError(`${what}: ${v} must be between 1s and 7 days`);
  return Math.round(n);
}

/** The auto-canary options as the admin API carries them (PromoteModelRequest.auto_json), checked with zod. */
export const canaryAutoSchema = z.strictObject({
  windowMs: z.number().int().min(1000).max(7 * 24 * 3_600_000),
  maxErrorRate: z.number().min(0).max(1).optional(),
  maxLatencyRatio: z.number().min(1).max(1000).optional(),
  maxDrift: z.number().min(0).max(100).optional(),
  minAccuracyDelta: z.number().min(-1).max(1).optional(),
  minRequests: z.number().int().min(1).max(1e9).optional(),
});
export type CanaryAutoOptions = z.output<typeof canaryAutoSchema>;

/** PromoteModelRequest.auto_json, checked: errors name the field (auto_json.maxErrorRate: ...). */
export function parseCanaryAuto(json: string): CanaryAutoOptions {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ValidationError(`auto_json: not JSON: ${(err as Error).message}`);
  }
  const r = canaryAutoSchema.safeParse(raw);
  if (!r.success) throw new ValidationError(formatZodError(r.error, 'auto_json'));
  return r.data;
}

/** Canary limits named as in the CLI flags and the run config's promotion section, with the window as a duration string. */
export interface NamedCanaryLimits {
  window: string;
  maxErrorRate?: number | undefined;
  maxLatencyRatio?: number | undefined;
  maxDrift?: number | undefined;
  minAccuracyDelta?: number | undefined;
  minRequests?: number | undefined;
}

/** `o` as auto options: the window parsed (errors name it as `windowWhat`), the limits given copied, the others left to the defaults. */
export function canaryAutoOptions(o: NamedCanaryLimits, windowWhat: string): CanaryAutoOptions {
  return {
    windowMs: parseDuration(o.window, windowWhat),
    ...(o.maxErrorRate !== undefined ? { maxErrorRate: o.maxErrorRate } : {}),
    ...(o.maxLatencyRatio !== undefined ? { maxLatencyRatio: o.maxLatencyRatio } : {}),
    ...(o.maxDrift !== undefined ? { maxDrift: o.maxDrift } : {}),
    ...(o.minAccuracyDelta !== undefined ? { minAccuracyDelta: o.minAccuracyDelta } : {}),
    ...(o.minRequests !== undefined ? { minRequests: o.minRequests } : {}),
  };
}

export function thresholdsOf(o: CanaryAutoOptions): CanaryThresholds {
  return {
    maxErrorRate: o.maxErrorRate ?? DEFAULT_THRESHOLDS.maxErrorRate,
    maxLatencyRatio: o.maxLatencyRatio ?? DEFAULT_THRESHOLDS.maxLatencyRatio,
    maxDrift: o.maxDrift ?? DEFAULT_THRESHOLDS.maxDrift,
    minRequests: o.minRequests ?? DEFAULT_THRESHOLDS.minRequests,
    ...(o.minAccuracyDelta !== undefined ? { minAccuracyDelta: o.minAccuracyDelta } : {}),
  };
}

/** One version's figures on one agent over the canary window (the agent's health section, per version). */
export interface VersionFigures {
  requests: number;
  /** Failed requests: model errors plus NaN/Inf outputs (bad requests excluded: they say nothing about the model). */
  errors: number;
  p99Ms?: number;
  classes?: number[];
  scalar?: { n: number; mean: number; std: number };
  accuracy?: number;
}

export interface AgentEvidence { agent: string; stable?: VersionFigures; candidate?: VersionFigures }

/** What the canary's figures are now (recorded with the verdict, shown by fedge model show). */
export interface CanaryFigures {
  agents: number;
  candidateRequests: number;
  stableRequests: number;
  errorRate?: number;
  latencyRatio?: number;
  drift?: number;
  accuracyDelta?: number;
}

export type CanaryVerdict =
  | { state: 'failing'; reason: string; figures: CanaryFigures }
  | { state: 'healthy' | 'insufficient'; figures: CanaryFigures };

/** Population stability index of `actual` against `expected` counts; zero bins get half a count (Jeffreys). */
export function psi(expected: number[], actual: number[]): number {
  const k = Math.max(expected.length, actual.length);
  const ne = expected.reduce((a, b) => a + b, 0) + 0.5 * k;
  const na = actual.reduce((a, b) => a + b, 0) + 0.5 * k;
  let s = 0;
  for (let i = 0; i < k; i++) {
    const e = ((expected[i] ?? 0) + 0.5) / ne;
    const a = ((actual[i] ?? 0) + 0.5) / na;
    s += (a - e) * Math.log(a / e);
  }
  return s;
}

/**
 * PSI beyond what sampling alone gives: two samples of one distribution have E[PSI] ~ (K-1)(1/n1 + 1/n2) (PSI is
 * about a chi-square over n), which with a few hundred predictions is already near the 0.25 band. Subtracting it
 * lets a canary judge drift early without flagging two equal models on small counts.
 */
export function psiExcess(expected: number[], actual: number[]): number {
  const k = Math.max(expected.length, actual.length);
  const n1 = expected.reduce((a, b) => a + b, 0);
  const n2 = actual.reduce((a, b) => a + b, 0);
  if (n1 === 0 || n2 === 0) return 0;
  return Math.max(0, psi(expected, actual) - (k - 1) * (1 / n1 + 1 / n2));
}

const sumClasses = (list: (number[] | undefined)[]): number[] => {
  const out: number[] = [];
  for (const c of list) c?.forEach((n, i) => (out[i] = (out[i] ?? 0) + n));
  return Array.from(out, (n) => n ?? 0);
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Requests per version on an agent before its p99 counts: with n requests the p99 is about the (n/100)th slowest, so
 * below a few hundred it is one or two slow requests, and on a busy device one scheduling hiccup would roll back a
 * healthy candidate (e2e on a loaded 2-core machine: p99 ratios of 2.7 to 7.8 between two equal MLPs at 60-130
 * requests each).
 */
export const LATENCY_MIN_REQUESTS = 200;

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/**
 * The verdict over every canary agent's latest evidence. `runAccuracyDelta`: candidate minus stable accuracy from the
 * run's own evaluations, used for minAccuracyDelta when no agent reports holdout accuracy for both versions.
 */
export function judgeCanary(evidence: AgentEvidence[], t: CanaryThresholds, runAccuracyDelta?: number): CanaryVerdict {
  const cand = evidence.map((e) => e.candidate).filter((x): x is VersionFigures => !!x);
  const stab = evidence.map((e) => e.stable).filter((x): x is VersionFigures => !!x);
  const candidateRequests = cand.reduce((a, f) => a + f.requests, 0);
  const errors = cand.reduce((a, f) => a + f.errors, 0);
  const figures: CanaryFigures = { agents: evidence.length, candidateRequests, stableRequests: stab.reduce((a, f) => a + f.requests, 0) };
  const enough = candidateRequests >= t.minRequests;
  if (candidateRequests > 0) figures.errorRate = errors / candidateRequests;
  // Latency on the same device and traffic: per agent, then the median, so one busy device does not decide alone.
  const ratios = evidence
    .filter((e) => e.candidate?.p99Ms !== undefined && e.stable?.p99Ms !== undefined && e.stable.p99Ms > 0 && e.candidate.requests >= LATENCY_MIN_REQUESTS && e.stable.requests >= LATENCY_MIN_REQUESTS)
    .map((e) => e.candidate!.p99Ms! / e.stable!.p99Ms!);
  if (ratios.length) figures.latencyRatio = median(ratios);
  const cc = sumClasses(cand.map((f) => f.classes));
  const sc = sumClasses(stab.map((f) => f.classes));
  if (cc.length && sc.length) figures.drift = psiExcess(sc, cc);
  else {
    const cs = cand.map((f) => f.scalar).filter((x) => x && x.n > 0);
    const ss = stab.map((f) => f.scalar).filter((x) => x && x.n > 1);
    if (cs.length && ss.length) {
      const mean = (l: typeof cs): number => l.reduce((a, x) => a + x!.mean * x!.n, 0) / l.reduce((a, x) => a + x!.n, 0);
      const sd = Math.max(1e-9, ss.reduce((a, x) => a + x!.std * x!.n, 0) / ss.reduce((a, x) => a + x!.n, 0));
      figures.drift = Math.abs(mean(cs) - mean(ss)) / sd;
    }
  }
  const both = evidence.filter((e) => e.candidate?.accuracy !== undefined && e.stable?.accuracy !== undefined);
  if (both.length) figures.accuracyDelta = both.reduce((a, e) => a + e.candidate!.accuracy! - e.stable!.accuracy!, 0) / both.length;
  else if (runAccuracyDelta !== undefined) figures.accuracyDelta = runAccuracyDelta;

  // Accuracy needs no traffic (holdouts, or the run's evaluations): judged at once.
  if (t.minAccuracyDelta !== undefined && figures.accuracyDelta !== undefined && figures.accuracyDelta < t.minAccuracyDelta - 1e-12)
    return { state: 'failing', figures, reason: `accuracy delta ${(figures.accuracyDelta * 100).toFixed(2)} points < min ${(t.minAccuracyDelta * 100).toFixed(2)} (${both.length ? `holdouts of ${both.length} agent(s)` : 'the run\'s evaluations'})` };
  if (enough && figures.errorRate !== undefined && figures.errorRate > t.maxErrorRate)
    return { state: 'failing', figures, reason: `error rate ${pct(figures.errorRate)} > max ${pct(t.maxErrorRate)} (${errors} of ${candidateRequests} candidate requests failed or returned NaN/Inf)` };
  if (enough && figures.drift !== undefined && figures.drift > t.maxDrift)
    return { state: 'failing', figures, reason: `prediction drift ${figures.drift.toFixed(3)} > max ${t.maxDrift} (${cc.length ? 'PSI of predicted classes' : 'mean shift in stable std'} vs the stable version)` };
  if (enough && figures.latencyRatio !== undefined && figures.latencyRatio > t.maxLatencyRatio)
    return { state: 'failing', figures, reason: `p99 latency ${figures.latencyRatio.toFixed(2)}x the stable version's > max ${t.maxLatencyRatio}x` };
  return { state: enough ? 'healthy' : 'insufficient', figures };
}

/** One line for logs, history and fedge model show: the figures the verdict was made on. */
export function describeFigures(f: CanaryFigures): string {
  const parts = [`${f.candidateRequests} candidate / ${f.stableRequests} stable requests on ${f.agents} agent(s)`];
  if (f.errorRate !== undefined) parts.push(`error rate ${pct(f.errorRate)}`);
  if (f.latencyRatio !== undefined) parts.push(`p99 ratio ${f.latencyRatio.toFixed(2)}`);
  if (f.drift !== undefined) parts.push(`drift ${f.drift.toFixed(3)}`);
  if (f.accuracyDelta !== undefined) parts.push(`accuracy delta ${(f.accuracyDelta * 100).toFixed(2)} pts`);
  return parts.join(', ');
}
