/** SCAFFOLD's server update (Karimireddy et al. 2020, Algorithm 1 lines 16-17): the model moves by the mean Δy, the server control variate by the sampled share of the mean Δc. */

// Conventions (as rules/server-opt.ts):
//  - Each agent's update is the pair (Δy_i, Δc_i): its model delta y_i − x and its control-variate delta
//    c_i⁺ − c_i. The engine streams both halves as one vector [Δy_i | Δc_i] of 2n values, so one mean gives both.
//  - The means are unweighted, as in the paper (x ← x + η_g/|S| Σ Δy_i), not example-weighted as FedAvg's.
//  - c ← c + (1/N) Σ_{i∈S} Δc_i = c + (|S|/N) · mean(Δc): c stays the mean of all N agents' variates (those not
//    sampled keep theirs), which is what makes the correction c − c_i unbiased.
//  - Arithmetic per coordinate in float64, stored values rounded to float32: the step is a deterministic function of
//    (x, c, means), so a coordinator restored from a snapshot continues bit-identically.
//  - The means are checked for NaN/±Infinity before anything is written: a poisoned c would skew every later round.

/** The halves of a stacked update mean [mean Δy | mean Δc] (views, no copy). */
export function splitStacked(stacked: Float32Array, numParams: number): { dy: Float32Array; dc: Float32Array } {
  if (stacked.length !== 2 * numParams)
    throw new RangeError(`scaffold: the aggregate holds ${stacked.length} values, expected 2 x ${numParams} (model delta, then control-variate delta)`);
  return { dy: stacked.subarray(0, numParams), dc: stacked.subarray(numParams) };
}

/** The share |S|/N of the population whose variate deltas a round folds in; in (0, 1]. */
export function sampledShare(sampled: number, population: number): number {
  if (!(Number.isInteger(sampled) && sampled >= 1)) throw new RangeError(`scaffold: a round needs at least one update, got ${sampled}`);
  // An agent that registered after the count was taken (or a population of 0 reported) must not push the share above 1.
  return sampled / Math.max(sampled, population);
}

/**
 * One server round: returns x + η_g·dy (a new array) and updates `c` in place to c + share·dc.
 * `share` is |S|/N (sampledShare). Throws before touching anything if a mean is not finite.
 */
export function scaffoldServerStep(x: Float32Array, c: Float32Array, dy: Float32Array, dc: Float32Array, serverLr: number, share: number): Float32Array {
  const n = x.length;
  if (c.length !== n || dy.length !== n || dc.length !== n)
    throw new RangeError(`scaffold: sizes differ (model ${n}, variate ${c.length}, model delta ${dy.length}, variate delta ${dc.length})`);
  if (!(Number.isFinite(serverLr) && serverLr > 0)) throw new RangeError(`scaffold: server learning rate must be > 0, got ${serverLr}`);
  if (!(share > 0 && share <= 1)) throw new RangeError(`scaffold: sampled share |S|/N must be in (0, 1], got ${share}`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(dy[i]!) || !Number.isFinite(dc[i]!)) throw new RangeError(`scaffold: the round's mean update is not finite at parameter ${i}`);
  }
  const next = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = x[i]! + serverLr * dy[i]!;
    c[i] = c[i]! + share * dc[i]!;
  }
  return next;
}
