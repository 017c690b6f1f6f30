/** Staleness functions s(tau) that discount an update computed on a model `tau` versions behind (FedAsync, FedBuff). */

export type StalenessFn =
  | { fn: 'constant' }
  | { fn: 'polynomial'; a: number }
  | { fn: 'hinge'; a: number; b: number };

/**
 * constant: 1. polynomial: (1 + tau)^-a (Xie et al. 2019; FedBuff uses a = 0.5).
 * hinge: 1 while tau <= b, then 1 / (a (tau - b) + 1).
 */
export function stalenessWeight(f: StalenessFn, tau: number): number {
  if (!(tau >= 0) || !Number.isInteger(tau)) throw new RangeError(`staleness must be a non-negative integer, got ${tau}`);
  switch (f.fn) {
    case 'constant':
      return 1;
    case 'polynomial':
      return (1 + tau) ** -f.a;
    case 'hinge':
      return tau <= f.b ? 1 : 1 / (f.a * (tau - f.b) + 1);
  }
}

/** Counts of updates per staleness value, e.g. {0: 3, 1: 2}. */
export function stalenessHistogram(taus: readonly number[]): Record<string, number> {
  const h: Record<string, number> = {};
  for (const t of taus) h[t] = (h[t] ?? 0) + 1;
  return h;
}
