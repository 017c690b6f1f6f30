/** The `health` section of an agent report: per served version, what its serving path saw (the canary's evidence). */
import { z } from 'zod';

const count = z.number().int().min(0).max(1e15);
const ms = z.number().finite().min(0).max(1e9);

/** One served version's serving figures since the agent started serving it (or over its window). */
export const versionHealthSchema = z.strictObject({
  version: z.number().int().nonnegative(),
  requests: count,
  errors: count,
  p50Ms: ms,
  p99Ms: ms,
  /** Predictions by class (or bin), for prediction drift between versions. */
  predictionHistogram: z.array(count).max(10_000).optional(),
});
export type VersionHealth = z.output<typeof versionHealthSchema>;

export const healthSectionSchema = z.strictObject({
  versions: z.array(versionHealthSchema).max(16),
});
export type HealthSection = z.output<typeof healthSectionSchema>;
