/** Identifiers and bounds shared by the report sections. */
import { z } from 'zod';

export const reportIdSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

/** A histogram's bins: counts, never rows (federated analytics). */
export const MAX_BINS = 1024;
export const binCountsSchema = z.array(z.number().int().min(0).max(1e15)).min(1).max(MAX_BINS);

/** One feature's histogram on the fleet's shared bin edges (drift/edges.ts derives them from the run's preprocessing). */
export const featureHistogramSchema = z.strictObject({
  feature: z.string().min(1).max(256),
  counts: binCountsSchema,
});
export type FeatureHistogramMsg = z.output<typeof featureHistogramSchema>;

/** Features per profile: a run's preprocessing allows 100k features; a profile of that many is still under the body cap only with few bins. */
export const MAX_PROFILE_FEATURES = 100_000;
