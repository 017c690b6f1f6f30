/**
 * Two-sample Kolmogorov-Smirnov statistic on binned data, with its asymptotic p-value.
 *
 * D is the largest gap between the two empirical CDFs, read at the bin boundaries: exact for the binned samples
 * (it equals scipy.stats.ks_2samp on the bin indices), but binning hides gaps inside a bin, so D on binned data is at
 * most D on the raw values. The p-value is the limiting Kolmogorov distribution's survival at sqrt(n m / (n + m)) D;
 * it is approximate: binned values tie (which makes it conservative), and for small samples the limit is off (scipy's
 * method='asymp' uses the finite-n kstwo distribution instead; drift.test.ts quotes both). Windows of hundreds of
 * requests are what it is meant for.
 */
import { total } from './histogram.js';
import { ValidationError } from '../errors.js';

export interface KsResult {
  /** Largest CDF gap, 0..1. */
  d: number;
  /** Asymptotic two-sided p-value (1 when either side is empty). */
  pValue: number;
  n: number;
  m: number;
}

export function ksBinned(a: readonly number[], b: readonly number[]): KsResult {
  if (a.length !== b.length) throw new ValidationError(`ks: ${a.length} bins vs ${b.length} bins`);
  const n = total(a);
  const m = total(b);
  if (n === 0 || m === 0) return { d: 0, pValue: 1, n, m };
  let ca = 0;
  let cb = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    ca += a[i]!;
    cb += b[i]!;
    d = Math.max(d, Math.abs(ca / n - cb / m));
  }
  return { d, pValue: kolmogorovSf(Math.sqrt((n * m) / (n + m)) * d), n, m };
}

/**
 * P(K > z) for the Kolmogorov distribution K (the limit of sqrt(n) sup|F_n - F|). Two series, each fast where the
 * other is slow: the alternating one for z >= 1, the Jacobi-theta form of the CDF below.
 */
export function kolmogorovSf(z: number): number {
  if (!(z > 0)) return 1;
  if (z < 1) {
    // CDF = sqrt(2 pi) / z * sum_{k>=1} exp(-(2k-1)^2 pi^2 / (8 z^2))
    const w = (Math.PI * Math.PI) / (8 * z * z);
    let s = 0;
    for (let k = 1; k <= 50; k++) {
      const t = Math.exp(-(2 * k - 1) * (2 * k - 1) * w);
      s += t;
      if (t < 1e-17 * s) break;
    }
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / z) * s));
  }
  // SF = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 z^2)
  let s = 0;
  for (let k = 1; k <= 100; k++) {
    const t = Math.exp(-2 * k * k * z * z);
    s += k % 2 === 1 ? t : -t;
    if (t < 1e-17) break;
  }
  return Math.min(1, Math.max(0, 2 * s));
}
