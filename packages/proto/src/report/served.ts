/** The `served` section of an agent report: the global version its model server has loaded. */
import { z } from 'zod';
import { reportIdSchema } from './ids.js';

export const servedSectionSchema = z.strictObject({
  runId: reportIdSchema,
  version: z.number().int().nonnegative(),
});
export type ServedSection = z.output<typeof servedSectionSchema>;
