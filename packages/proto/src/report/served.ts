/** The `served` section of an agent report: the global version its model server has loaded. */
import { z } from 'zod';
import { reportIdSchema } from './ids.js';

export const servedSectionSchema = z.strictObject({
  runId: reportIdSchema,
  version: z.number().int().nonnegative(),
  /** The key of the run's fleet drift reference the agent holds (none yet: absent); the reply brings a newer one. */
  fleetReferenceKey: z.string().max(128).optional(),
});
export type ServedSection = z.output<typeof servedSectionSchema>;
