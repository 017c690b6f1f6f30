/**
 * What an agent does to its update before sending it, in this order: add the error-feedback residual, clip the delta
 * to L2 norm S, add local-DP noise, then compress (so the clip bound holds on whatever is sent, compressed or not).
 */
import {
  CODECS,
  ENCODING_OF,
  GaussianSampler,
  ValidationError,
  clipToNorm,
  encodeUpdate,
  type CodecName,
  type ErrorFeedback,
  type TrainConfigMsg,
} from '@fedge/proto';

/** Noise for local DP comes from the OS CSPRNG; one sampler per process. */
let sampler: GaussianSampler | undefined;

/**
 * Applies the task's DP settings to `delta` in place and returns the metrics to report: `dp_clipped` only when the
 * coordinator asked for it (adaptive clipping in central DP). The raw norm is never reported.
 */
export function privatizeUpdate(delta: Float32Array, c: Pick<TrainConfigMsg, 'clipNorm' | 'noiseStd' | 'reportClipped'>, noise?: GaussianSampler): Record<string, number> {
  const metrics: Record<string, number> = {};
  const clipNorm = c.clipNorm ?? 0;
  const noiseStd = c.noiseStd ?? 0;
  if (clipNorm > 0) {
    const r = clipToNorm(delta, clipNorm);
    if (c.reportClipped) metrics.dp_clipped = r.clipped ? 1 : 0;
  }
  if (noiseStd > 0) (noise ?? (sampler ??= new GaussianSampler())).addNoise(delta, noiseStd);
  return metrics;
}

export interface PackedUpdate {
  payload: Uint8Array;
  encoding: string;
  metrics: Record<string, number>;
  /** Keeps the error-feedback residual of this payload: call once the coordinator accepted it. */
  onAccepted?: () => void;
}

/**
 * Turns a trained delta (modified in place) into what goes on the wire. `ef` is the run's error feedback, used only
 * with a lossy codec that asks for it.
 */
export function packUpdate(delta: Float32Array, c: TrainConfigMsg, ef?: ErrorFeedback, noise?: GaussianSampler): PackedUpdate {
  const codec = codecOf(c.codec);
  const feedback = codec !== 'float32' && c.errorFeedback ? ef : undefined;
  // What the codec dropped last time goes in before clipping, so the DP bound covers it too.
  feedback?.apply(delta);
  const metrics = privatizeUpdate(delta, c, noise);
  // The clip norm also bounds what int8 rounding may send (a clipped vector sits on the bound).
  const payload = encodeUpdate(delta, { codec, topkFraction: c.topkFraction ?? 0.1 }, (c.clipNorm ?? 0) > 0 ? c.clipNorm : undefined);
  const encoding = ENCODING_OF[codec];
  if (codec !== 'float32') metrics.compression_ratio = payload.byteLength / delta.byteLength;
  return { payload, encoding, metrics, ...(feedback ? { onAccepted: () => feedback.update(delta, payload, encoding) } : {}) };
}

/** The task's codec; an unknown one fails the task with a message instead of sending something the coordinator rejects. */
export function codecOf(name: string | undefined): CodecName {
  if (!name) return 'float32';
  if ((CODECS as readonly string[]).includes(name)) return name as CodecName;
  throw new ValidationError(`task config codec: unknown "${name}"; this agent knows ${CODECS.join(', ')} (upgrade the agent)`);
}
