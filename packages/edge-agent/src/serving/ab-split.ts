/**
 * A/B routing of one served model between a stable and a candidate version: a request id hashes to a point in
 * [0, 1), and points below `fraction` go to the candidate, so the same id always lands on the same version (a user
 * keeps seeing one model) while the share of ids that do follows `fraction`.
 */

/** Serve `candidate` to `fraction` (0..1) of requests and `stable` to the rest; versions as the slot names them. */
export interface SplitConfig {
  stable: string;
  candidate: string;
  fraction: number;
  /** Who set it: the coordinator's canary (run id) or the agent's --serve-ab-fraction flag. */
  source: 'canary' | 'flag';
}

/**
 * The request id's point in [0, 1): FNV-1a over its UTF-16 code units, then murmur3's finalizer, whose avalanche
 * spreads ids that differ in their last character only (req-1, req-2, ...) over the whole range.
 */
export function splitPoint(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/**
 * The version that answers a request with id `requestId` (undefined: no id, a fresh random draw, so not sticky).
 * Fraction 0 sends everything to stable, 1 everything to the candidate.
 */
export function pickVersion(split: SplitConfig, requestId: string | undefined, random: () => number = Math.random): string {
  const p = requestId === undefined || requestId === '' ? random() : splitPoint(requestId);
  return p < split.fraction ? split.candidate : split.stable;
}

/** Checks a fraction from a flag or the coordinator: a number in [0, 1]. */
export function checkFraction(f: number, what: string): number {
  if (!(Number.isFinite(f) && f >= 0 && f <= 1)) throw new Error(`${what} must be a fraction in [0, 1], got ${f}`);
  return f;
}
