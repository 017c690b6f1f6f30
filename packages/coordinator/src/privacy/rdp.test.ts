/**
 * The accountant against figures published in the test suites of TensorFlow Privacy, Google's dp_accounting and
 * Opacus (sources named per test), against closed forms, and against direct numerical integration of A_alpha.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_ORDERS, computeRdp, logA, rdpOneStep } from './rdp.js';
import { deltaFromRdp, epsilonFromRdp } from './conversion.js';
import { RdpAccountant, planEpsilon, planNoise } from './accountant.js';
import { erfc, logErfc } from './special.js';

const rel = (got: number, want: number): number => Math.abs(got - want) / Math.abs(want);
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Orders of TensorFlow Privacy's compute_dp_sgd_privacy_lib.compute_dp_sgd_privacy. */
const TFP_DPSGD_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...range(5, 64), 128, 256, 512];
/** Opacus RDPAccountant.DEFAULT_ALPHAS. */
const OPACUS_ALPHAS = [...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10), ...range(12, 64)];

describe('special functions', () => {
  it('erfc matches known values and its log stays finite far in the tail', () => {
    expect(rel(erfc(0.1), 0.8875370839817151)).toBeLessThan(1e-14);
    expect(rel(erfc(1), 0.15729920705028513)).toBeLessThan(1e-14);
    expect(rel(erfc(3), 2.209049699858544e-5)).toBeLessThan(1e-13);
    expect(rel(erfc(-2), 1.9953222650189528)).toBeLessThan(1e-14);
    expect(rel(erfc(10), 2.088487583762545e-45)).toBeLessThan(1e-13);
    // erfc(30) underflows nowhere near; log erfc(x) ~ -x^2 - log(x sqrt(pi)) - 1/(2x^2)
    const x = 300;
    const asym = -x * x - Math.log(x * Math.sqrt(Math.PI)) - 1 / (2 * x * x);
    expect(rel(logErfc(x), asym)).toBeLessThan(1e-12);
  });
});

describe('RDP of the Poisson-subsampled Gaussian', () => {
  it('closed forms: q = 1 is alpha / (2 z^2); order 2 is log(1 + q^2 (e^(1/z^2) - 1)); q = 0 is 0', () => {
    // TensorFlow Privacy rdp_accountant_test.test_compute_rdp_no_sampling: compute_rdp(1, 10, 1, 20) == 0.1
    expect(computeRdp(1, 10, 1, [20])[0]).toBeCloseTo(0.1, 15);
    expect(computeRdp(0, 10, 1, [20])[0]).toBe(0); // test_compute_rdp_no_data
    for (const [q, z] of [[0.01, 1], [0.3, 0.7], [0.9, 2.5], [1e-5, 0.3]] as const) {
      const want = Math.log1p(q * q * Math.expm1(1 / (z * z)));
      expect(rel(rdpOneStep(q, z, 2), want)).toBeLessThan(1e-12);
    }
    // Integer and fractional code paths meet: order 3 vs 3 +- 1e-7.
    for (const [q, z] of [[0.05, 1.1], [0.5, 3]] as const) {
      const mid = rdpOneStep(q, z, 3);
      expect(rel(rdpOneStep(q, z, 3 + 1e-7), mid)).toBeLessThan(1e-5);
      expect(rel(rdpOneStep(q, z, 3 - 1e-7), mid)).toBeLessThan(1e-5);
    }
  });

  it('TensorFlow Privacy test_compute_rdp_scalar: compute_rdp(0.1, 2, 10, 5) = 0.07737', () => {
    expect(Math.abs(computeRdp(0.1, 2, 10, [5])[0]! - 0.07737)).toBeLessThan(5e-6);
  });

  it('dp_accounting test_compute_rdp_poisson_sampled_gaussian (q=0.01, z=2.5, 50 steps), rtol 1e-4', () => {
    const got = computeRdp(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100, Infinity]);
    const want = [6.5007e-4, 1.0854e-3, 2.1808e-3, 2.3846e-2, 1.6742e2];
    want.forEach((w, i) => expect(rel(got[i]!, w)).toBeLessThan(1e-4));
    expect(got[5]).toBe(Infinity);
    // The same case in TensorFlow Privacy test_compute_rdp_sequence, to 1e-5 absolute (more digits on the last one).
    [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307].forEach((w, i) => expect(Math.abs(got[i]! - w)).toBeLessThan(1e-5));
  });

  // dp_accounting / TensorFlow Privacy test_compute_log_a_equals_mp compare log(A) with a multi-precision integral at
  // these points; we integrate A - 1 = E_mu0[(1 + q (mu1/mu0 - 1))^alpha - 1] directly (no cancellation) instead.
  it.each([
    { q: 1e-7, sigma: 0.1, order: 1.01 },
    { q: 1e-6, sigma: 1, order: 27 },
    { q: 1e-4, sigma: 1, order: 1.5 },
    { q: 1e-3, sigma: 1, order: 2 },
    { q: 0.01, sigma: 10, order: 20 },
    { q: 0.1, sigma: 100, order: 20.5 },
    { q: 0.05, sigma: 0.8, order: 7.3 },
    { q: 0.3, sigma: 2, order: 2.71828 },
  ])('log A matches numerical integration at q=$q sigma=$sigma order=$order (rtol 1e-4)', ({ q, sigma, order }) => {
    // Integrand in units of sigma: x = sigma * t, mu0 = standard normal density in t.
    const f = (t: number): number => {
      const x = sigma * t;
      const logRatio = (2 * x - 1) / (2 * sigma * sigma); // log(mu1/mu0)
      // log(mu/mu0) = log(1 + q (mu1/mu0 - 1)), without overflow where mu1/mu0 is huge
      const logMix = logRatio > 30 ? Math.log(q) + logRatio + Math.log1p((1 - q) / (q * Math.exp(logRatio))) : Math.log1p(q * Math.expm1(logRatio));
      const logPdf = -0.5 * t * t - 0.5 * Math.log(2 * Math.PI);
      const l = order * logMix;
      // pdf * (e^l - 1), without 0 * Infinity far in the tails
      return Math.abs(l) < 1 ? Math.exp(logPdf) * Math.expm1(l) : Math.exp(logPdf + l) - Math.exp(logPdf);
    };
    // The integrand's mass sits near t = 0 and near x ~ order (where (mu1/mu0)^alpha peaks); the trapezoid rule on a
    // fine grid is spectrally accurate for these smooth, rapidly decaying integrands.
    const hiT = Math.max(40, (order + 40) / sigma + 40);
    const n = 400_000;
    const h = (hiT + 40) / n;
    let s = 0;
    for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 0.5 : 1) * f(-40 + i * h);
    const want = Math.log1p(s * h);
    expect(rel(logA(q, sigma, order), want)).toBeLessThan(1e-4);
  });
});

describe('RDP -> (epsilon, delta)', () => {
  it('dp_accounting test_compute_epsilon_delta_pure_dp: rdp 1.1 at orders 2..32, delta 1e-5 -> 1.32783806176 at 32', () => {
    const orders = range(2, 33);
    const rdp = orders.map(() => 1.1);
    const r = epsilonFromRdp(orders, rdp, 1e-5);
    expect(r.epsilon).toBeCloseTo(1.32783806176, 10);
    expect(r.order).toBe(32);
    const d = deltaFromRdp(orders, rdp, 1.32783806176);
    expect(rel(d.delta, 1e-5)).toBeLessThan(1e-9);
    expect(d.order).toBe(32);
  });

  it('dp_accounting test_compute_epsilon_delta_gaussian: q=1, z=4.530877117 is exactly (1, 1e-6)-DP', () => {
    const orders = Array.from({ length: 99_000 }, (_, i) => 0.001 * (i + 1000));
    const rdp = computeRdp(1, 4.530877117, 1, orders);
    expect(epsilonFromRdp(orders, rdp, 1e-6).epsilon).toBeCloseTo(1, 7);
    expect(deltaFromRdp(orders, rdp, 1).delta).toBeCloseTo(1e-6, 7);
  });

  it.each([
    // TensorFlow Privacy compute_dp_sgd_privacy_test.test_compute_dp_sgd_privacy (dp_accounting RdpAccountant):
    // n, batch, noise multiplier, epochs, delta -> epsilon, order; q = batch/n, steps = ceil(epochs n / batch).
    { n: 60000, batch: 150, z: 1.3, epochs: 15, delta: 1e-5, eps: 0.7242234026109595, order: 19 },
    { n: 100000, batch: 100, z: 1.0, epochs: 30, delta: 1e-7, eps: 1.4154988495444842, order: 13 },
    { n: 100000000, batch: 1024, z: 0.1, epochs: 10, delta: 1e-7, eps: 5907982.3113978775, order: 1.25 },
  ])('TensorFlow Privacy compute_dp_sgd_privacy(n=$n, batch=$batch, z=$z, epochs=$epochs) = $eps', ({ n, batch, z, epochs, delta, eps, order }) => {
    const r = planEpsilon({ samplingRate: batch / n, noiseMultiplier: z, steps: Math.ceil((epochs * n) / batch), delta, orders: TFP_DPSGD_ORDERS });
    expect(rel(r.epsilon, eps)).toBeLessThan(1e-4);
    expect(rel(r.epsilon, eps)).toBeLessThan(1e-8); // in fact agrees to ~double precision
    expect(r.order).toBe(order);
  });

  it('Opacus accountants_test.test_rdp_accountant: q=0.04, z=1.5, 2250 steps, delta 1e-5 -> 7.32911117143', () => {
    const acc = new RdpAccountant(OPACUS_ALPHAS);
    for (let i = 0; i < 2250; i++) acc.compose({ samplingRate: 0.04, noiseMultiplier: 1.5 });
    expect(rel(acc.epsilon(1e-5).epsilon, 7.32911117143)).toBeLessThan(1e-4);
    expect(acc.epsilon(1e-5).epsilon).toBeCloseTo(7.32911117143, 7);
    expect(acc.steps).toBe(2250);
  });

  it('TensorFlow Privacy test_check_composition: heterogeneous composition, classic conversion 8.509656 at order 2.5', () => {
    const orders = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256];
    const acc = new RdpAccountant(orders).compose({ samplingRate: 1e-4, noiseMultiplier: 0.4 }, 40000).compose({ samplingRate: 0.1, noiseMultiplier: 2 }, 100);
    const classic = acc.epsilon(1e-5, 'classic');
    expect(classic.epsilon).toBeCloseTo(8.509656, 5);
    expect(classic.order).toBe(2.5);
    expect(acc.epsilon(1e-5).epsilon).toBeLessThanOrEqual(8.509656); // the improved conversion is tighter
  });

  it('epsilon and delta conversions are consistent (dp_accounting test_epsilon_delta_consistency)', () => {
    const orders = range(2, 50);
    for (const q of [0.01, 0.1, 0.8, 1])
      for (const z of [0.1, 1, 10, 100]) {
        const rdp = computeRdp(q, z, 1, orders);
        for (const delta of [0.9, 0.1, 0.01, 1e-3, 1e-5, 1e-9, 1e-12]) {
          const { epsilon } = epsilonFromRdp(orders, rdp, delta);
          const d2 = deltaFromRdp(orders, rdp, epsilon).delta;
          if (epsilon === 0) expect(d2).toBeLessThanOrEqual(delta);
          else expect(rel(d2, delta)).toBeLessThan(1e-7);
        }
      }
  });

  it('the Gaussian bound is never better than the optimal one (Balle-Wang 2018 Theorem 8)', () => {
    const orders = Array.from({ length: 495 }, (_, i) => 0.1 * (i + 10)).filter((a) => a > 1);
    const rdp = computeRdp(1, 1, 1, orders);
    for (let e = 0; e < 50; e += 0.5) {
      const { delta } = deltaFromRdp(orders, rdp, e);
      const optimal = erfc((e - 0.5) / Math.SQRT2) / 2 - (Math.exp(e) * erfc((e + 0.5) / Math.SQRT2)) / 2;
      expect(optimal).toBeLessThanOrEqual(delta + 1e-300);
    }
  });
});

describe('planner', () => {
  it('default orders are sorted, > 1, and include fractional ones', () => {
    expect(DEFAULT_ORDERS.every((a, i) => a > 1 && (i === 0 || a > DEFAULT_ORDERS[i - 1]!))).toBe(true);
    expect(DEFAULT_ORDERS).toContain(1.5);
  });

  it('noise for a target epsilon is the smallest that meets it, and round-trips through planEpsilon', () => {
    const r = planNoise({ targetEpsilon: 2, samplingRate: 0.1, steps: 100, delta: 1e-5 });
    expect(planEpsilon({ samplingRate: 0.1, noiseMultiplier: r.noiseMultiplier, steps: 100, delta: 1e-5 }).epsilon).toBeLessThanOrEqual(2);
    expect(planEpsilon({ samplingRate: 0.1, noiseMultiplier: r.noiseMultiplier * (1 - 1e-6), steps: 100, delta: 1e-5 }).epsilon).toBeGreaterThan(2);
  });

  it('Opacus test_get_noise_multiplier_rdp_steps: eps 8, q 0.04, 2000 steps, delta 1e-5 -> 1.3562 (their bisection stops within 0.01 of the target)', () => {
    const r = planNoise({ targetEpsilon: 8, samplingRate: 0.04, steps: 2000, delta: 1e-5, orders: OPACUS_ALPHAS });
    expect(r.noiseMultiplier).toBeLessThanOrEqual(1.3562);
    expect(Math.abs(r.noiseMultiplier - 1.3562)).toBeLessThan(2e-3);
    const e = planEpsilon({ samplingRate: 0.04, noiseMultiplier: 1.3562, steps: 2000, delta: 1e-5, orders: OPACUS_ALPHAS }).epsilon;
    expect(e).toBeLessThanOrEqual(8);
    expect(e).toBeGreaterThan(7.99);
  });

  it('rejects bad arguments with the quantity named', () => {
    const ok = { samplingRate: 0.1, noiseMultiplier: 1, steps: 10, delta: 1e-5 };
    expect(() => planEpsilon({ ...ok, samplingRate: 0 })).toThrow(/sampling rate must be in \(0, 1\]/);
    expect(() => planEpsilon({ ...ok, samplingRate: 1.5 })).toThrow(/sampling rate/);
    expect(() => planEpsilon({ ...ok, noiseMultiplier: 0 })).toThrow(/noise multiplier must be greater than 0/);
    expect(() => planEpsilon({ ...ok, delta: 1 })).toThrow(/delta must be in \(0, 1\)/);
    expect(() => planEpsilon({ ...ok, delta: 0 })).toThrow(/delta/);
    expect(() => planEpsilon({ ...ok, steps: 0 })).toThrow(/steps must be an integer of at least 1/);
    expect(() => planEpsilon({ ...ok, steps: 1.5 })).toThrow(/steps/);
    expect(() => planEpsilon({ ...ok, orders: [1, 2] })).toThrow(/greater than 1/);
    expect(() => planNoise({ targetEpsilon: -1, samplingRate: 0.1, steps: 10, delta: 1e-5 })).toThrow(/target epsilon/);
  });
});
