/**
 * The run config's compression block: today's codec/topkFraction, or pipelines (proto codec/spec.ts) for the uplink
 * ("topk:0.001+q8") and the downlink ("delta+fp16"), error feedback with DGC momentum correction and warm-up. Also
 * what a train task carries for it and the encoding the coordinator then expects back.
 */
import { z } from 'zod';
import {
  CODECS,
  ENCODING_OF,
  TOPK_MAX_FRACTION,
  parsePipeline,
  pipelineEncoding,
  pipelineSchema,
  withDensity,
  type CodecName,
  type TrainConfigMsg,
} from '@fedge/proto';

const canonical = (option: string, direction: 'uplink' | 'downlink') => pipelineSchema(option, direction).transform((p) => p.spec);

export const compressionSchema = z
  .strictObject({
    /** Today's codecs (kept working): float32, int8 blocks (0.254x), top-k with 4-byte indices. */
    codec: z.enum(CODECS, { message: `compression.codec: use one of ${CODECS.join(', ')}` }).default('float32'),
    topkFraction: z
      .number()
      .gt(0, `compression.topkFraction: must be in (0, ${TOPK_MAX_FRACTION}]`)
      .max(TOPK_MAX_FRACTION, `compression.topkFraction: must be in (0, ${TOPK_MAX_FRACTION}]; above it top-k is larger than float32`)
      .default(0.1),
    /** Carry what the codec dropped into the agent's next update (kept on the agent's disk per run). */
    errorFeedback: z.boolean().default(true),
    /** Uplink pipeline, e.g. "topk:0.001+q8", "q4", "fp16"; supersedes codec/topkFraction. */
    uplink: canonical('compression.uplink', 'uplink').optional(),
    /** Downlink pipeline: "delta+fp16", "delta+q8" or "delta" (exact); the full model goes when a delta is not smaller. */
    downlink: canonical('compression.downlink', 'downlink').optional(),
    /** DGC momentum correction (Lin et al. 2018): the residual accumulates u = m u + delta; 0 or absent: off. */
    momentum: z.number().min(0, 'compression.momentum: must be in [0, 1)').lt(1, 'compression.momentum: must be in [0, 1)').optional(),
    /** DGC warm-up: top-k density falls geometrically from 25% to its fraction over this many rounds. */
    warmupRounds: z.number().int('compression.warmupRounds: must be an integer').min(0).max(1000, 'compression.warmupRounds: at most 1000').optional(),
  })
  .superRefine((c, ctx) => {
    if (c.uplink !== undefined && c.codec !== 'float32')
      ctx.addIssue({ code: 'custom', message: `compression.codec ${c.codec} and compression.uplink "${c.uplink}": give one (uplink is the pipeline form, e.g. "topk:0.01+q8")` });
    if ((c.momentum ?? 0) > 0 && !c.errorFeedback)
      ctx.addIssue({ code: 'custom', message: 'compression.momentum: momentum correction accumulates in the error-feedback residual; set errorFeedback true or drop momentum' });
    const p = c.uplink !== undefined ? parsePipeline(c.uplink) : undefined;
    if ((c.warmupRounds ?? 0) > 0 && p?.topk === undefined)
      ctx.addIssue({ code: 'custom', message: 'compression.warmupRounds: warm-up ramps the top-k density; it needs an uplink with topk, e.g. "topk:0.001+q8"' });
  })
  .default({ codec: 'float32', topkFraction: 0.1, errorFeedback: true });

export type CompressionConfig = z.infer<typeof compressionSchema>;

/** The uplink as a spec string: the pipeline, or today's codec ("topk" keeps its 4-byte-index layout). */
export function uplinkName(c: CompressionConfig): string {
  return c.uplink ?? (c.codec === 'topk' ? `topk (fraction ${c.topkFraction}, 4-byte indices)` : c.codec);
}

/** True when updates travel in another form than float32 (what scaffold and secure aggregation cannot take). */
export function compressesUplink(c: CompressionConfig): boolean {
  return (c.uplink ?? c.codec) !== 'float32';
}

/** Top-k density of round r (1-based) under warm-up: F^(r / (W + 1)), i.e. 25%, 6.25%, 1.6%, 0.4% then 0.1% for F = 0.001, W = 4. */
export function warmupFraction(fraction: number, warmupRounds: number, round: number): number {
  if (warmupRounds <= 0 || round > warmupRounds) return fraction;
  return Math.min(TOPK_MAX_FRACTION, fraction ** (Math.max(1, round) / (warmupRounds + 1)));
}

/** What a train task of round r carries about compression (nothing for float32). */
export function trainCodecFields(c: CompressionConfig, round: number): Partial<TrainConfigMsg> {
  if (!compressesUplink(c)) return {};
  const m = c.momentum ?? 0;
  const ef = { errorFeedback: c.errorFeedback, ...(m > 0 ? { efMomentum: m } : {}) };
  if (c.uplink === undefined) return { codec: c.codec, topkFraction: c.topkFraction, ...ef };
  let p = parsePipeline(c.uplink);
  if (p.topk !== undefined && (c.warmupRounds ?? 0) > 0) p = withDensity(p, warmupFraction(p.topk, c.warmupRounds!, round));
  return { codec: p.spec, ...ef };
}

/** The encoding a train result of a task with this config must carry. */
export function expectedEncoding(t: Pick<TrainConfigMsg, 'codec'>): string {
  const codec = t.codec || 'float32';
  if ((CODECS as readonly string[]).includes(codec)) return ENCODING_OF[codec as CodecName];
  return pipelineEncoding(parsePipeline(codec));
}
