/** The `site` section of an agent report: what stands behind an aggregator site (fedge serve --upstream), kept fresh at its root. */
import { z } from 'zod';

export const siteSectionSchema = z.strictObject({
  /** Agents online at the site now. */
  agents: z.number().int().min(0).max(1e9),
  /** Their training examples (the weight the site's updates carry). */
  examples: z.number().int().min(0).max(1e15),
});
export type SiteSection = z.output<typeof siteSectionSchema>;
