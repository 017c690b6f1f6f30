/**
 * RDP -> (epsilon, delta) conversion.
 *
 * `improved` (default): Canonne, Kamath, Steinke 2020 ("The Discrete Gaussian for Differential Privacy",
 * arXiv:2004.00010, Proposition 12) / Asoodeh et al. 2020 (arXiv:2001.05990, eq. 20), as used by Google's
 * dp_accounting and Opacus:
 *   epsilon = rdp + log1p(-1/alpha) - log(delta * alpha) / (alpha - 1)      (alpha > 1.01)
 * plus the KL bound delta <= sqrt(1 - exp(-rdp)) that gives epsilon = 0 when it already meets delta.
 * `classic`: Mironov 2017 Proposition 3, epsilon = rdp - log(delta) / (alpha - 1) (what TensorFlow Privacy used
 * before 2020; kept to reproduce old figures).
 */
export type Conversion = 'improved' | 'classic';

export interface EpsilonResult {
  epsilon: number;
  /** The order that gave the smallest epsilon (NaN when no order gives a finite one). */
  order: number;
}

function check(orders: readonly number[], rdp: readonly number[]): void {
  if (orders.length !== rdp.length) throw new RangeError(`orders (${orders.length}) and rdp (${rdp.length}) must have the same length`);
  if (orders.length === 0) throw new RangeError('at least one RDP order is needed');
  for (let i = 0; i < orders.length; i++) {
    if (!(orders[i]! >= 1)) throw new RangeError(`RDP order must be at least 1, got ${orders[i]}`);
    if (!(rdp[i]! >= 0)) throw new RangeError(`RDP values cannot be negative, got ${rdp[i]} at order ${orders[i]}`);
  }
}

/** Smallest epsilon over the orders at which the mechanism is (epsilon, delta)-DP. */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number, conversion: Conversion = 'improved'): EpsilonResult {
  check(orders, rdp);
  if (!(delta >= 0)) throw new RangeError(`delta cannot be negative, got ${delta}`);
  if (delta === 0) return rdp.every((r) => r === 0) ? { epsilon: 0, order: orders[0]! } : { epsilon: Infinity, order: NaN };
  let best = Infinity;
  let order = NaN;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i]!;
    const r = rdp[i]!;
    let eps: number;
    if (conversion === 'classic') eps = a > 1 ? r - Math.log(delta) / (a - 1) : Infinity;
    else if (delta * delta + Math.expm1(-r) > 0) eps = 0; // KL bound: delta <= sqrt(1 - exp(-rdp)) already holds
    else if (a > 1.01) eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1); // unstable as alpha -> 1
    else eps = Infinity;
    if (eps < best) {
      best = eps;
      order = a;
    }
  }
  return { epsilon: Math.max(0, best), order };
}

/** Smallest delta over the orders at which the mechanism is (epsilon, delta)-DP (improved conversion). */
export function deltaFromRdp(orders: readonly number[], rdp: readonly number[], epsilon: number): { delta: number; order: number } {
  check(orders, rdp);
  if (!(epsilon >= 0)) throw new RangeError(`epsilon cannot be negative, got ${epsilon}`);
  let best = Infinity;
  let order = NaN;
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i]!;
    const r = rdp[i]!;
    let logDelta = r === 0 ? -Infinity : 0.5 * Math.log1p(-Math.exp(-r));
    if (a > 1.01) logDelta = Math.min(logDelta, (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a));
    if (logDelta < best) {
      best = logDelta;
      order = a;
    }
  }
  return { delta: Math.min(Math.exp(best), 1), order };
}
