/**
 * Drift statistics against figures computed independently with scipy 1.17.1 / numpy 2.4.6 (drift-reference.py, run
 * once by hand, not part of the build): PSI = numpy sum((a - e) * log(a / e)) on proportions clipped below at 1e-4;
 * KS D = scipy.stats.ks_2samp(np.repeat(bins, counts_a), np.repeat(bins, counts_b)).statistic, and its asymptotic
 * p-value = scipy.stats.kstwobign.sf(sqrt(n m / (n + m)) D) (the limiting Kolmogorov distribution; scipy's own
 * method='asymp' uses kstwo.sf(D, round(n m / (n + m))) instead, a finite-n refinement: quoted beside each case);
 * Kolmogorov survival = scipy.stats.kstwobign.sf(z).
 */
import { describe, expect, it } from 'vitest';
import { binIndex, binner, histogram, mergeCounts, addCountsInto, emptyCounts } from './histogram.js';
import { PSI_EPSILON, psi, psiBand } from './psi.js';
import { kolmogorovSf, ksBinned } from './ks.js';

describe('histograms', () => {
  it('bins with open tails: (-inf, e0), [e0, e1), ..., [e_last, inf); NaN has no bin', () => {
    const edges = [0, 0.5, 1];
    expect([-5, 0, 0.25, 0.5, 0.99, 1, 7].map((v) => binIndex(edges, v))).toEqual([0, 1, 1, 2, 2, 3, 3]);
    expect(binIndex(edges, NaN)).toBe(-1);
    expect(histogram([-1, 0.1, 0.2, 0.7, NaN, 3, Infinity, -Infinity], edges)).toEqual([2, 2, 1, 2]);
    expect(emptyCounts(edges)).toEqual([0, 0, 0, 0]);
  });

  it('binner (arithmetic on evenly spaced edges) bins exactly as binIndex, edges and float noise included', () => {
    const sets = [[0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1], [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2].map((z) => 13.7 + 3.3 * z), [0, 1, 5], [0.5], [0.5, 1.5]];
    for (const edges of sets) {
      const b = binner(edges);
      const probes = [...edges, ...edges.map((e) => e + 1e-12), ...edges.map((e) => e - 1e-12), ...Array.from({ length: 2000 }, (_, i) => (i - 1000) / 37), NaN, Infinity, -Infinity, 0.30000000000000004];
      for (const v of probes) expect(b(v), `${v} on ${edges.join(',')}`).toBe(binIndex(edges, v));
    }
  });

  it('merge exactly: the histogram of the union is the sum of the histograms', () => {
    const edges = [-2, -1, 0, 1, 2];
    const parts = [[-3, -1.5, 0.2, 0.3, 5], [0, 0, 1.9, -0.5], [], [2, 2, 2, -2]];
    const merged = parts.map((p) => histogram(p, edges)).reduce((a, b) => mergeCounts(a, b));
    expect(merged).toEqual(histogram(parts.flat(), edges));
    const acc = emptyCounts(edges);
    for (const p of parts) addCountsInto(acc, histogram(p, edges));
    expect(acc).toEqual(merged);
    expect(() => mergeCounts([1, 2], [1, 2, 3], 'feature x')).toThrow(/feature x: 2 bins vs 3/);
  });
});

describe('PSI (reference: numpy, epsilon 1e-4)', () => {
  const cases: [number[], number[], number][] = [
    [[100, 200, 300, 250, 150], [80, 150, 320, 300, 150], 0.02925382291132241],
    [[50, 50, 0, 100], [10, 60, 30, 100], 1.4272553963513541], // an empty reference bin: clipped to epsilon
    [[1000, 1000, 1000, 1000], [1000, 1000, 1000, 1000], 0],
    [[10, 80, 10, 0, 0], [0, 10, 30, 40, 20], 7.201627142019086],
  ];
  it.each(cases)('psi(%j, %j) = %f', (ref, live, want) => {
    expect(psi(ref, live)).toBeCloseTo(want, 12);
  });

  it('is 0 with an empty side, symmetric in its terms, and banded at 0.1 / 0.25', () => {
    expect(PSI_EPSILON).toBe(1e-4);
    expect(psi([0, 0, 0], [1, 2, 3])).toBe(0);
    expect(psi([1, 2, 3], [3, 2, 1])).toBeCloseTo(psi([3, 2, 1], [1, 2, 3]), 12);
    expect([0, 0.0999, 0.1, 0.25, 0.2501, 3].map(psiBand)).toEqual(['stable', 'stable', 'moderate', 'moderate', 'significant', 'significant']);
    expect(() => psi([1, 2], [1])).toThrow(/2 reference bins vs 1 live/);
  });
});

describe('two-sample KS on binned data (reference: scipy ks_2samp D on the bin indices, kstwobign p)', () => {
  const cases: [number[], number[], number, number][] = [
    [[5, 10, 20, 30, 20, 10, 5], [2, 5, 10, 25, 30, 18, 10], 0.23000000000000004, 0.010083519227095586], // scipy asymp: 0.00829
    [[0, 3, 40, 120, 40, 3, 0], [0, 3, 40, 120, 40, 3, 0], 0, 1],
    [[400, 300, 200, 100], [100, 200, 300, 400], 0.39999999999999997, 6.514977064414857e-70], // scipy asymp: 1.04e-72
    [[1, 0, 0, 2], [0, 1, 1, 0], 0.6666666666666667, 0.6603860200299692], // scipy asymp: 0.667 (n = 3 and 2: p means little)
  ];
  it.each(cases)('ks(%j, %j): D %f, p %f', (a, b, d, p) => {
    const r = ksBinned(a, b);
    expect(r.d).toBeCloseTo(d, 12);
    // Relative: p spans 1e-72..1.
    expect(Math.abs(r.pValue - p) / Math.max(p, 1e-300)).toBeLessThan(1e-9);
  });

  it('Kolmogorov survival function matches scipy.stats.kstwobign.sf across both series', () => {
    const want: Record<string, number> = {
      '0.2': 0.999999999999495, '0.3': 0.9999906941986655, '0.5': 0.9639452436648751, '0.8': 0.5441424115741981, '0.99': 0.2808738392255489,
      '1.0': 0.26999967167735456, '1.36': 0.049485876755377876, '2.0': 0.0006709252557796953, '3.0': 3.045995948942526e-08,
    };
    for (const [z, p] of Object.entries(want)) expect(Math.abs(kolmogorovSf(Number(z)) - p) / p, `z=${z}`).toBeLessThan(1e-9);
    expect(kolmogorovSf(0)).toBe(1);
  });

  it('binning only hides gaps: on N(0,1) vs N(0.3,1), 2000 draws each, binned D <= raw D (approximate p)', () => {
    // numpy default_rng(7) draws binned on [-2, -1.5, ..., 2]; scipy on the raw draws: D 0.1565, p 7.4e-22
    // (scipy asymp on the binned indices: p 2.27e-20).
    const hx = [47, 86, 195, 312, 431, 356, 271, 174, 80, 48];
    const hy = [20, 44, 125, 233, 347, 393, 348, 271, 126, 93];
    const r = ksBinned(hx, hy);
    expect(r.d).toBeCloseTo(0.15099999999999997, 12);
    expect(Math.abs(r.pValue - 3.1356893568064435e-20) / 3.1356893568064435e-20).toBeLessThan(1e-9);
    expect(r.d).toBeLessThanOrEqual(0.15649999999999997);
    expect(psi(hx, hy)).toBeCloseTo(0.12008482569245021, 12);
  });
});
