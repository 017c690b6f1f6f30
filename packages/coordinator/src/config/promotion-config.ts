/**
 * The run config's `promotion`: when the run ends, its best version (by the run's task metric) is promoted through a
 * self-healing canary if it reaches `minMetric`, and an alert is raised otherwise (engine/promotion-gate.ts decides).
 */
import { z } from 'zod';
import { METRICS } from '@fedge/proto';
import { parseDuration } from '../engine/canary.js';

const GATE_METRICS = [...METRICS, 'loss'] as const;

export const promotionConfigSchema = z.strictObject({
  /** Promote automatically at the run's end (false: the section is only a record of intent; nothing happens). */
  auto: z.boolean().default(false),
  /** The bound the best version's metric must reach: at least this for accuracy-like metrics, at most for rmse, mae and loss. */
  minMetric: z.number().refine(Number.isFinite, 'promotion.minMetric: must be a finite number'),
  /** Which metric (default: stopAt's, else the task's first metric, else accuracy). */
  metric: z.enum(GATE_METRICS, { message: `promotion.metric: use one of ${GATE_METRICS.join(', ')}` }).optional(),
  /** Fraction of requests the new version answers during its canary, on every serving agent. */
  canary: z.number().gt(0, 'promotion.canary: must be in (0, 1)').lt(1, 'promotion.canary: must be in (0, 1)').default(0.2),
  /** How long the canary must stay healthy ("30s", "10m", "1h"). */
  window: z.string().default('10m').superRefine((v, ctx) => {
    try {
      parseDuration(v, 'promotion.window');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  }),
  maxErrorRate: z.number().min(0).max(1).optional(),
  maxLatencyRatio: z.number().min(1).optional(),
  maxDrift: z.number().min(0).optional(),
  minAccuracyDelta: z.number().min(-1).max(1).optional(),
});
export type PromotionConfig = z.output<typeof promotionConfigSchema>;
