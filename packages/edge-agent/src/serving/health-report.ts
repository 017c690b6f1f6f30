/**
 * The `health` section of the agent's status report: per served version, the serving figures of the current window
 * (serving-stats.ts), with the A/B split in force. During a coordinator canary the agent reports often (every
 * CANARY_REPORT_MS while requests come in) so a broken candidate is rolled back within seconds, not a heartbeat.
 */
import type { HealthSection } from '@fedge/proto';
import type { ModelSlot } from './model-slot.js';
import type { HoldoutScorer } from './holdout-accuracy.js';

export const CANARY_REPORT_MS = 1000;

const versionNumber = (v: string): number | undefined => (/^\d{1,15}$/.test(v) ? Number(v) : undefined);

/** The section for `slot` now; undefined while nothing is loaded or the window has no request yet. */
export function healthSection(slot: ModelSlot, scorer?: HoldoutScorer): HealthSection | undefined {
  const cur = slot.current;
  if (!cur) return undefined;
  const window = slot.stats.windowView();
  const versions: HealthSection['versions'] = [];
  // Holdout accuracy matters while two versions are compared (a canary): computed once per version, in the background.
  const split = slot.split?.source === 'canary' ? slot.split : undefined;
  for (const [v, w] of Object.entries(window)) {
    const version = versionNumber(v);
    if (version === undefined) continue; // a standalone model's free-form version: no global version to report
    const accuracy = split && scorer && (v === split.stable || v === split.candidate) ? scorer.accuracy(v) : undefined;
    versions.push({
      version,
      requests: w.requests,
      errors: w.errors,
      nan: w.nan,
      invalid: w.invalid,
      p50Ms: w.p50Ms ?? 0,
      p99Ms: w.p99Ms ?? 0,
      ...(w.classes ? { predictionHistogram: w.classes.slice(0, 10_000) } : {}),
      ...(w.scalar && Number.isFinite(w.scalar.mean) && Number.isFinite(w.scalar.std) ? { scalar: w.scalar } : {}),
      ...(accuracy !== undefined ? { accuracy } : {}),
    });
  }
  if (versions.length === 0) return undefined;
  const s = slot.activeSplit();
  const candidate = s && versionNumber(s.candidate);
  const stable = s && versionNumber(s.stable);
  return {
    ...(cur.info.run !== undefined ? { runId: String(cur.info.run) } : {}),
    ...(s && candidate !== undefined && stable !== undefined ? { split: { candidate, stable, fraction: s.fraction } } : {}),
    since: slot.stats.windowSince,
    versions: versions.slice(0, 16),
  };
}

/**
 * Adds the section to `reporter` and, while a coordinator canary split is set, asks for a report every
 * CANARY_REPORT_MS when requests came in since the last one. Returns a stop function.
 */
export function reportHealth(reporter: { section(name: 'health', fn: () => HealthSection | undefined): unknown; poke(): void }, slot: ModelSlot, scorer?: HoldoutScorer, everyMs = CANARY_REPORT_MS): () => void {
  reporter.section('health', () => healthSection(slot, scorer));
  let seen = -1;
  const timer = setInterval(() => {
    if (slot.split?.source !== 'canary') return;
    const n = Object.values(slot.stats.windowView()).reduce((a, w) => a + w.requests, 0);
    if (n === seen) return;
    seen = n;
    reporter.poke();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
