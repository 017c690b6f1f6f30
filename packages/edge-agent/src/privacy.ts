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
  encodePipeline,
  encodeUpdate,
  parsePipeline,
  pipelineEncoding,
  type CodecName,
  type ErrorFeedback,
  type Pipeline,
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
  const uplink = uplinkOf(c.codec);
  const lossy = uplink.spec !== 'float32';
  const feedback = lossy && c.errorFeedback ? ef : undefined;
  // What the codec dropped last time goes in before clipping, so the DP bound covers it too.
  feedback?.apply(delta);
  const metrics = privatizeUpdate(delta, c, noise);
  // The clip norm also bounds what rounding may send (a clipped vector sits on the bound): every codec keeps it.
  const maxNorm = (c.clipNorm ?? 0) > 0 ? c.clipNorm : undefined;
  const payload = uplink.pipeline
    ? encodePipeline(delta, uplink.pipeline, maxNorm !== undefined ? { maxNorm } : {})
    : encodeUpdate(delta, { codec: uplink.codec!, topkFraction: c.topkFraction ?? 0.1 }, maxNorm);
  const encoding = uplink.encoding;
  if (lossy) metrics.compression_ratio = payload.byteLength / delta.byteLength;
  return { payload, encoding, metrics, ...(feedback ? { onAccepted: () => feedback.update(delta, payload, encoding) } : {}) };
}

/** A task's uplink: today's codec or a pipeline, with the encoding its result carries. */
export interface Uplink {
  spec: string;
  encoding: string;
  codec?: CodecName;
  pipeline?: Pipeline;
}

/** The task's uplink; an unknown one fails the task with a message instead of sending something the coordinator rejects. */
export function uplinkOf(name: string | undefined): Uplink {
  if (!name) return { spec: 'float32', encoding: ENCODING_OF.float32, codec: 'float32' };
  if ((CODECS as readonly string[]).includes(name)) return { spec: name, encoding: ENCODING_OF[name as CodecName], codec: name as CodecName };
  try {
    const pipeline = parsePipeline(name, 'uplink', 'task config codec');
    return { spec: pipeline.spec, encoding: pipelineEncoding(pipeline), pipeline };
  } catch (err) {
    throw new ValidationError(`task config codec: unknown "${name}"; this agent knows ${CODECS.join(', ')} and pipelines such as topk:0.01+q8 (upgrade the agent): ${(err as Error).message}`);
  }
}

/** True when the task's updates are not plain float32 (error feedback applies). */
export function compresses(name: string | undefined): boolean {
  return uplinkOf(name).spec !== 'float32';
}
