/** The `privacy` block of a run config, and the checks that tie it to the rest of the config. */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';

export const privacyConfigSchema = z.strictObject({
  /** central: agents clip, the coordinator adds noise to the sum (trusted coordinator). local: agents also add noise. */
  mode: z.enum(['central', 'local'], { message: 'privacy.mode: use "central" (coordinator adds noise) or "local" (agents add noise)' }).default('central'),
  /** L2 norm every agent clips its update (model delta) to; the initial value when clipping is adaptive. */
  clipNorm: z.number({ message: 'privacy.clipNorm: give the L2 clip norm of an update, a number > 0' }).positive('privacy.clipNorm must be > 0').max(1e6),
  /** Noise std divided by the clip norm. */
  noiseMultiplier: z.number({ message: 'privacy.noiseMultiplier: give the noise multiplier z (noise std = z * clipNorm), a number > 0' }).positive('privacy.noiseMultiplier must be > 0').max(1e6),
  /** Delta at which epsilon is reported. */
  delta: z.number().gt(0, 'privacy.delta must be in (0, 1)').lt(1, 'privacy.delta must be in (0, 1)').default(1e-5),
  /** Stop the run before the round that would take epsilon above this. */
  maxEpsilon: z.number().positive('privacy.maxEpsilon must be > 0').optional(),
  /**
   * The statistics step: each agent's per-column (count, sum, sum of squares) vector is clipped to this L2 norm and the
   * sum noised with std noiseMultiplier x statisticsClipNorm (one more accounted step). Needed when the run normalizes
   * with fleet statistics (zscore) and task.statistics does not cover every numeric feature.
   */
  statisticsClipNorm: z.number().positive('privacy.statisticsClipNorm must be > 0').max(1e15).optional(),
  /** Adaptive clipping (Andrew et al. 2021): the clip norm tracks a quantile of update norms (central mode only). */
  adaptiveClipping: z
    .strictObject({
      targetQuantile: z.number().gt(0, 'privacy.adaptiveClipping.targetQuantile must be in (0, 1)').lt(1, 'privacy.adaptiveClipping.targetQuantile must be in (0, 1)').default(0.5),
      learningRate: z.number().positive('privacy.adaptiveClipping.learningRate must be > 0').max(10).default(0.2),
      /** Std of the noise on the count of unclipped updates; default: noiseMultiplier. Must exceed noiseMultiplier / 2. */
      countNoiseStd: z.number().positive('privacy.adaptiveClipping.countNoiseStd must be > 0').optional(),
    })
    .optional(),
});

export type PrivacyConfig = z.output<typeof privacyConfigSchema>;

/** The parts of a run config the privacy checks look at. */
interface RunShape {
  mode?: string;
  agentsPerRound: { fraction: number };
  sync?: { overSelection: number; lateResults: string };
  privacy?: PrivacyConfig | undefined;
}

/** Checks that hold across fields; throws a ValidationError naming the field. */
export function checkPrivacyConfig(c: RunShape): void {
  const p = c.privacy;
  if (!p) return;
  const bad = (m: string): never => {
    throw new ValidationError(`invalid run config: ${m}`);
  };
  if (p.mode === 'central' && c.mode !== 'async') {
    if (c.sync && c.sync.overSelection > 0)
      bad('privacy: sync.overSelection must be 0 with central DP (agents must be Poisson-sampled with rate agentsPerRound.fraction for the accountant to hold)');
    if (c.sync && c.sync.lateResults !== 'discard')
      bad('privacy: sync.lateResults must be "discard" with central DP (a late update would count in a round it was not sampled for)');
  }
  if (p.adaptiveClipping) {
    if (p.mode !== 'central') bad('privacy.adaptiveClipping: needs privacy.mode "central" (the coordinator noises the clipped-update count)');
    const sb = p.adaptiveClipping.countNoiseStd ?? p.noiseMultiplier;
    if (!(2 * sb > p.noiseMultiplier))
      bad(`privacy.adaptiveClipping.countNoiseStd (${sb}) must be greater than noiseMultiplier / 2 (${p.noiseMultiplier / 2}): the count query takes its privacy from the same budget`);
  }
}
