/**
 * The `profile` and `drift` sections of an agent report. profile: the histograms of the agent's training split for a
 * run (its part of the fleet reference). drift: the agent's live window against its own and the fleet's reference.
 */
import { z } from 'zod';
import { MAX_PROFILE_FEATURES, binCountsSchema, featureHistogramSchema, reportIdSchema } from './ids.js';

/** Histograms of a training split (or of the fleet: the sum of its agents'), on the run's shared edges. */
export const dataProfileCountsSchema = z.strictObject({
  /** Examples the histograms count. */
  examples: z.number().int().min(0).max(1e12),
  features: z.array(featureHistogramSchema).max(MAX_PROFILE_FEATURES),
  /** Label distribution: examples per class (classification), per 0/1 (binary) or positives per output (multilabel). */
  labels: binCountsSchema.optional(),
});
export type DataProfileCounts = z.output<typeof dataProfileCountsSchema>;

export const profileSectionSchema = z.strictObject({
  runId: reportIdSchema,
  /** The round whose training task computed it (a newer one replaces an older one). */
  round: z.number().int().nonnegative(),
  profile: dataProfileCountsSchema,
});
export type ProfileSection = z.output<typeof profileSectionSchema>;

export const DRIFT_REFERENCES = ['own', 'fleet'] as const;
export type DriftReference = (typeof DRIFT_REFERENCES)[number];

const stat = z.number().finite().min(0).max(1e6);
/** One feature (or the predictions, feature "") against one reference. */
export const driftRowSchema = z.strictObject({
  feature: z.string().max(256),
  reference: z.enum(DRIFT_REFERENCES),
  psi: stat,
  ks: z.number().finite().min(0).max(1),
  pValue: z.number().finite().min(0).max(1),
});
export type DriftRow = z.output<typeof driftRowSchema>;

export const driftSectionSchema = z.strictObject({
  runId: reportIdSchema,
  version: z.number().int().nonnegative(),
  /** Inference requests in the live window the figures are computed on. */
  window: z.number().int().min(0).max(1e12),
  features: z.array(driftRowSchema).max(2 * MAX_PROFILE_FEATURES),
  prediction: z.array(driftRowSchema).max(DRIFT_REFERENCES.length),
});
export type DriftSection = z.output<typeof driftSectionSchema>;
