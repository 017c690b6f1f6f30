/**
 * L2 clipping of a model update, shared by the edge agent (which clips before compressing or sending, so the bound
 * holds on what leaves the device) and the coordinator (which checks it).
 */

/** L2 norm of a vector (or of several concatenated), accumulated in float64. */
export function l2Norm(values: Float32Array | readonly Float32Array[]): number {
  const parts = values instanceof Float32Array ? [values] : values;
  let s = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) s += p[i]! * p[i]!;
  return Math.sqrt(s);
}

export interface ClipResult {
  /** Norm before clipping. */
  norm: number;
  /** Factor the update was multiplied by: min(1, clipNorm / norm). */
  factor: number;
  /** Whether the update was scaled down. */
  clipped: boolean;
}

/**
 * Scales `values` in place so that its L2 norm is at most `clipNorm` (x * min(1, S / ||x||)). The factor is shaded
 * down by 1e-6 relative when scaling, so float32 rounding of the scaled values cannot push the norm above S.
 */
export function clipToNorm(values: Float32Array | readonly Float32Array[], clipNorm: number): ClipResult {
  if (!(Number.isFinite(clipNorm) && clipNorm > 0)) throw new RangeError(`clip norm must be a positive finite number, got ${clipNorm}`);
  const norm = l2Norm(values);
  if (!Number.isFinite(norm)) throw new RangeError('cannot clip an update that contains NaN or Infinity');
  if (norm <= clipNorm) return { norm, factor: 1, clipped: false };
  const factor = (clipNorm / norm) * (1 - 1e-6);
  for (const p of values instanceof Float32Array ? [values] : values) for (let i = 0; i < p.length; i++) p[i] = p[i]! * factor;
  return { norm, factor, clipped: true };
}
