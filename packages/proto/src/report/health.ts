/** The `health` section of an agent report: per served version, what its serving path saw (the canary's evidence). */
import { z } from 'zod';
import { reportIdSchema } from './ids.js';

const count = z.number().int().min(0).max(1e15);
const ms = z.number().finite().min(0).max(1e9);
const version = z.number().int().nonnegative();

/** One served version's serving figures since the agent started serving it (or over its window). */
export const versionHealthSchema = z.strictObject({
  version,
  requests: count,
  /** Requests the model failed (5xx). */
  errors: count,
  p50Ms: ms,
  p99Ms: ms,
  /** Predictions by class (or bin), for prediction drift between versions. */
  predictionHistogram: z.array(count).max(10_000).optional(),
  /** Answered with NaN or infinite outputs: unusable, so a canary counts them as errors. */
  nan: count.optional(),
  /** Bad requests (4xx): the client's fault, not counted against the version. */
  invalid: count.optional(),
  /** Models with one output value per example (regression, binary): count, mean and standard deviation of it. */
  scalar: z.strictObject({ n: count, mean: z.number().finite(), std: z.number().finite().min(0) }).optional(),
  /** Accuracy on the agent's labelled holdout, when it has one and the model takes its rows. */
  accuracy: z.number().min(0).max(1).optional(),
});
export type VersionHealth = z.output<typeof versionHealthSchema>;

export const healthSectionSchema = z.strictObject({
  /** The run the versions belong to (a canary is judged per run). */
  runId: reportIdSchema.optional(),
  /** The A/B split in force: the candidate answers `fraction` of requests, stable the rest. */
  split: z.strictObject({ candidate: version, stable: version, fraction: z.number().min(0).max(1) }).optional(),
  /** Start of the window the figures cover (ISO time; a new split starts a new window). */
  since: z.string().max(64).optional(),
  versions: z.array(versionHealthSchema).max(16),
});
export type HealthSection = z.output<typeof healthSectionSchema>;
