/**
 * What an agent does to its update for differential privacy, in this order: clip the delta to L2 norm S (so the bound
 * holds on whatever is sent, compressed or not), then, for local DP, add N(0, noiseStd^2) to every parameter.
 */
import { GaussianSampler, clipToNorm, type TrainConfigMsg } from '@fedge/proto';

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
