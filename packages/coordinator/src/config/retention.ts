/** Model retention settings (run config `retention`, `fedge serve --keep-versions`, `fedge model gc --keep-last`). */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';

/**
 * Versions of a run whose weights are kept besides the pinned ones (promoted, canary, best, served): enough to
 * roll back or export a recent version, few enough that a 92 MiB model over hundreds of rounds stays bounded.
 */
export const DEFAULT_KEEP_LAST = 5;

export type KeepLast = number | 'all';

const KEEP_LAST_HINT = 'use a whole number of versions >= 1, or "all" to keep every version';
const keepLastSchema = z.union(
  [z.number(KEEP_LAST_HINT).int(KEEP_LAST_HINT).min(1, KEEP_LAST_HINT).max(1_000_000, KEEP_LAST_HINT), z.literal('all', KEEP_LAST_HINT)],
  { message: KEEP_LAST_HINT },
);

/** Run config `retention`; absent: the coordinator's default (fedge serve --keep-versions, else DEFAULT_KEEP_LAST). */
export const retentionSchema = z.strictObject({ keepLast: keepLastSchema });

export type RetentionConfig = z.infer<typeof retentionSchema>;

/** A --keep-versions / --keep-last value from the command line: a whole number >= 1 or "all". */
export function parseKeepLast(v: string, flag: string): KeepLast {
  const parsed = keepLastSchema.safeParse(v === 'all' ? v : Number(v));
  if (!parsed.success || (v !== 'all' && !/^\d+$/.test(v))) throw new ValidationError(`${flag} must be a whole number of versions >= 1 or "all", got "${v}"`);
  return parsed.data;
}
