import { createRng } from '@fedge/proto';
import { describe, expect, it } from 'vitest';
import { base64ToFloat32, createServerOptimizer, float32ToBase64, restoreServerOptimizer, SERVER_OPT_NAMES, type ServerOptName } from './server-opt.js';

// Float64 references written from the papers' formulas, independently of the implementation
// (state kept in float64 throughout, no float32 rounding anywhere).
interface Ref {
  w: Float64Array;
  step(delta: Float64Array): void;
}

function reference(name: ServerOptName, w0: Float32Array, o: { lr: number; b1: number; b2: number; tau: number }): Ref {
  const n = w0.length;
  const w = Float64Array.from(w0);
  const m = new Float64Array(n);
  const v = new Float64Array(n).fill(o.tau * o.tau); // v_{-1} = τ² (the documented choice)
  return {
    w,
    step(d) {
      for (let i = 0; i < n; i++) {
        if (name === 'fedavgm') {
          m[i] = o.b1 * m[i]! + d[i]!; // Hsu et al.: momentum β = b1 here
          w[i] = w[i]! + o.lr * m[i]!;
          continue;
        }
        m[i] = o.b1 * m[i]! + (1 - o.b1) * d[i]!;
        const g2 = d[i]! ** 2;
        if (name === 'fedadam') v[i] = o.b2 * v[i]! + (1 - o.b2) * g2;
        else if (name === 'fedyogi') v[i] = v[i]! - (1 - o.b2) * g2 * Math.sign(v[i]! - g2);
        else v[i] = v[i]! + g2;
        w[i] = w[i]! + (o.lr * m[i]!) / (Math.sqrt(v[i]!) + o.tau);
      }
    },
  };
}

function gauss(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** Random pseudo-gradients with per-coordinate scales spread over 4 decades, so adaptivity matters. */
function deltas(seed: number, n: number, rounds: number): Float32Array[] {
  const rng = createRng(seed);
  const scale = Float64Array.from({ length: n }, () => 10 ** (-3 + 4 * rng()));
  return Array.from({ length: rounds }, () => Float32Array.from({ length: n }, (_, i) => gauss(rng) * scale[i]! * 0.1));
}

const CASES: Array<{ name: ServerOptName; opts: Record<string, number>; ref: { lr: number; b1: number; b2: number; tau: number } }> = [
  { name: 'fedavgm', opts: {}, ref: { lr: 1, b1: 0.9, b2: 0, tau: 0 } },
  { name: 'fedavgm', opts: { serverLr: 0.7, momentum: 0.5 }, ref: { lr: 0.7, b1: 0.5, b2: 0, tau: 0 } },
  { name: 'fedadam', opts: {}, ref: { lr: 1e-2, b1: 0.9, b2: 0.99, tau: 1e-3 } },
  { name: 'fedadam', opts: { serverLr: 0.1, beta1: 0.8, beta2: 0.999, tau: 1e-2 }, ref: { lr: 0.1, b1: 0.8, b2: 0.999, tau: 1e-2 } },
  { name: 'fedyogi', opts: {}, ref: { lr: 1e-2, b1: 0.9, b2: 0.99, tau: 1e-3 } },
  { name: 'fedyogi', opts: { serverLr: 0.03, tau: 1e-4 }, ref: { lr: 0.03, b1: 0.9, b2: 0.99, tau: 1e-4 } },
  { name: 'fedadagrad', opts: {}, ref: { lr: 1e-2, b1: 0, b2: 0, tau: 1e-3 } },
  { name: 'fedadagrad', opts: { serverLr: 0.1, beta1: 0.9 }, ref: { lr: 0.1, b1: 0.9, b2: 0, tau: 1e-3 } },
];

describe('server optimizers vs float64 references', () => {
  for (const c of CASES) {
    it(`${c.name} ${JSON.stringify(c.opts)}: 12 rounds within 1e-5 relative`, () => {
      const n = 2000;
      const rng = createRng(7);
      const w = Float32Array.from({ length: n }, () => gauss(rng));
      const ref = reference(c.name, w, c.ref);
      const opt = createServerOptimizer(c.name, n, c.opts);
      const ds = deltas(11, n, 12);
      for (const d of ds) {
        opt.apply(w, d);
        ref.step(Float64Array.from(d));
      }
      expect(opt.step).toBe(12);
      // Relative error on the displacement w − w0 (what the optimizer contributes); an absolute
      // floor of 1e-5 × the displacement's RMS avoids dividing by coordinates that barely moved.
      const rng0 = createRng(7); // same stream as the initial weights
      const start = Float64Array.from({ length: n }, () => gauss(rng0));
      let rms = 0;
      for (let i = 0; i < n; i++) rms += (ref.w[i]! - start[i]!) ** 2;
      rms = Math.sqrt(rms / n);
      expect(rms).toBeGreaterThan(0);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const moved = ref.w[i]! - start[i]!;
        const err = Math.abs(w[i]! - ref.w[i]!);
        // Storing w in float32 rounds it once per round (≤ 2^-24·|w| each, 12 rounds); that part is
        // the weights' format, not the optimizer's error, so it is allowed on top of the 1e-5.
        const allowed = 1e-5 * Math.max(Math.abs(moved), rms) + ds.length * 2 ** -24 * (Math.abs(ref.w[i]!) + Math.abs(moved));
        worst = Math.max(worst, err / allowed);
      }
      expect(worst).toBeLessThanOrEqual(1);
    });
  }
});

describe('snapshot / restore', () => {
  for (const name of SERVER_OPT_NAMES) {
    it(`${name}: a restore mid-run (through JSON) continues bit-identically`, () => {
      const n = 1537;
      const rng = createRng(3);
      const init = Float32Array.from({ length: n }, () => gauss(rng));
      const ds = deltas(5, n, 10);

      const a = createServerOptimizer(name, n, { serverLr: 0.05 });
      const wa = init.slice();
      for (const d of ds) a.apply(wa, d);

      const b = createServerOptimizer(name, n, { serverLr: 0.05 });
      const wb = init.slice();
      for (const d of ds.slice(0, 4)) b.apply(wb, d);
      const record = JSON.parse(JSON.stringify({ weights: float32ToBase64(wb), opt: b.snapshot() }));
      // "Restart": nothing survives but the record.
      const c = restoreServerOptimizer(record.opt);
      const wc = base64ToFloat32(record.weights, n);
      expect(c.step).toBe(4);
      for (const d of ds.slice(4)) c.apply(wc, d);

      expect(c.step).toBe(10);
      expect(Buffer.from(wc.buffer).equals(Buffer.from(wa.buffer))).toBe(true);
      expect(c.snapshot()).toEqual(a.snapshot());
    });
  }

  it('restore() into a configured optimizer refuses other options, names, sizes and broken buffers, leaving state intact', () => {
    const a = createServerOptimizer('fedadam', 8, { serverLr: 0.1 });
    a.apply(new Float32Array(8), new Float32Array(8).fill(0.5));
    const snap = a.snapshot();
    expect(() => createServerOptimizer('fedadam', 8, { serverLr: 0.2 }).restore(snap)).toThrow(/option serverLr=0.1 differs from the configured serverLr=0.2/);
    expect(() => createServerOptimizer('fedyogi', 8, { serverLr: 0.1 }).restore(snap)).toThrow(/cannot restore a fedadam snapshot into fedyogi/);
    expect(() => createServerOptimizer('fedadam', 9, { serverLr: 0.1 }).restore(snap)).toThrow(/snapshot is for 8 params/);
    const fresh = createServerOptimizer('fedadam', 8, { serverLr: 0.1 });
    const before = fresh.snapshot();
    expect(() => fresh.restore({ ...snap, v: snap.m.slice(0, 8) })).toThrow(/expected 32/);
    expect(fresh.snapshot()).toEqual(before);
    fresh.restore(snap);
    expect(fresh.snapshot()).toEqual(snap);
  });

  it('float32 base64 round-trips every bit pattern (NaN payload, -0, subnormals)', () => {
    const bits = new Uint32Array([0x7fc00001, 0x80000000, 0x00000001, 0x7f7fffff, 0x3f800000]);
    const f = new Float32Array(bits.buffer);
    const back = base64ToFloat32(float32ToBase64(f), 5);
    expect(Array.from(new Uint32Array(back.buffer))).toEqual(Array.from(bits));
    // A view with an offset encodes only its own bytes.
    expect(base64ToFloat32(float32ToBase64(f.subarray(1, 3)), 2)[0]).toBe(-0);
  });
});

describe('validation', () => {
  it('rejects bad options naming the option', () => {
    expect(() => createServerOptimizer('fedadam', 4, { beta2: 1 })).toThrow(/fedadam: option beta2 must be in \[0, 1\)/);
    expect(() => createServerOptimizer('fedyogi', 4, { tau: 0 })).toThrow(/option tau must be a positive number/);
    expect(() => createServerOptimizer('fedavgm', 4, { serverLr: -1 })).toThrow(/option serverLr/);
    expect(() => createServerOptimizer('sgd' as ServerOptName, 4)).toThrow(/unknown server optimizer "sgd"/);
  });
  it('refuses a non-finite delta before touching state or weights', () => {
    const o = createServerOptimizer('fedyogi', 3);
    const w = new Float32Array([1, 2, 3]);
    const before = o.snapshot();
    expect(() => o.apply(w, new Float32Array([0.1, NaN, 0.2]))).toThrow(/delta\[1\] is NaN/);
    expect(Array.from(w)).toEqual([1, 2, 3]);
    expect(o.snapshot()).toEqual(before);
    expect(() => o.apply(w, new Float32Array(2))).toThrow(/must both have 3 values/);
  });
  it('fedavgm with momentum 0 and lr 1 is FedAvg exactly', () => {
    const o = createServerOptimizer('fedavgm', 3, { momentum: 0 });
    const w = new Float32Array([1, 2, 3]);
    o.apply(w, new Float32Array([0.5, -0.25, 0.125]));
    expect(Array.from(w)).toEqual([1.5, 1.75, 3.125]);
  });
});
