/** FedBuff (Nguyen et al. 2022) aggregation step: a staleness-weighted sum of K buffered deltas over their examples. */

/**
 * The streamed aggregate holds sum_i (n_i s_i delta_i) / sum_i (n_i s_i). FedBuff divides by the examples alone,
 * sum_i n_i, so that stale updates really count for less rather than being renormalised back up.
 * Returns the step to add to the global model, in place of `weightedMean`.
 */
export function buffedStep(weightedMean: Float32Array, totalWeight: number, totalExamples: number): Float32Array {
  if (!(totalExamples > 0)) throw new RangeError('a buffered step needs at least one example');
  const f = totalWeight / totalExamples;
  for (let i = 0; i < weightedMean.length; i++) weightedMean[i]! *= f;
  return weightedMean;
}
