import { createRng } from '@fedge/proto';
import { describe, expect, it } from 'vitest';
import { coordinateMedian, krum, multiKrum, normBound, pairwiseSquaredDistances, scaleSource, trimmedMean, weightedMean, type UpdateSource } from './robust.js';

function gauss(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** K honest updates around a common direction plus `bad` outliers (sign-flipped ×10, or huge constants). */
function updates(seed: number, K: number, n: number, bad: number): Float32Array[] {
  const rng = createRng(seed);
  const center = Float64Array.from({ length: n }, () => gauss(rng) * 0.1);
  return Array.from({ length: K }, (_, k) =>
    Float32Array.from({ length: n }, (_, i) => {
      const honest = center[i]! + gauss(rng) * 0.05;
      if (k >= K - bad) return k % 2 ? -10 * honest : 50 + rng();
      return honest;
    }),
  );
}

/** A source over in-memory updates that records every read (and returns fresh copies, so mutation by the callee would not leak). */
function source(us: Float32Array[], weights?: number[]): UpdateSource & { reads: Array<[number, number, number]> } {
  const reads: Array<[number, number, number]> = [];
  const read = (k: number, offset: number, length: number): Float32Array => {
    reads.push([k, offset, length]);
    return us[k]!.slice(offset, offset + length);
  };
  return weights ? { count: us.length, numParams: us[0]!.length, read, weights, reads } : { count: us.length, numParams: us[0]!.length, read, reads };
}

// Brute-force float64 references over whole updates.
function column(us: Float32Array[], i: number): number[] {
  return us.map((u) => u[i]!).sort((a, b) => a - b);
}
function refMedian(us: Float32Array[]): Float64Array {
  return Float64Array.from({ length: us[0]!.length }, (_, i) => {
    const c = column(us, i);
    const K = c.length;
    return K % 2 ? c[(K - 1) / 2]! : (c[K / 2 - 1]! + c[K / 2]!) / 2;
  });
}
function refTrimmed(us: Float32Array[], beta: number): Float64Array {
  const b = Math.floor(beta * us.length);
  return Float64Array.from({ length: us[0]!.length }, (_, i) => {
    const c = column(us, i).slice(b, us.length - b);
    return c.reduce((s, x) => s + x, 0) / c.length;
  });
}
function refDist(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}
function refKrumScores(us: Float32Array[], f: number): number[] {
  return us.map((u, a) =>
    us
      .filter((_, c) => c !== a)
      .map((v) => refDist(u, v))
      .sort((x, y) => x - y)
      .slice(0, us.length - f - 2)
      .reduce((s, x) => s + x, 0),
  );
}

function expectClose(got: Float32Array, want: Float64Array, rel: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i]! - want[i]!) > rel * Math.max(Math.abs(want[i]!), 1e-6)) {
      throw new Error(`param ${i}: got ${got[i]}, want ${want[i]}`);
    }
  }
}

const N = 1000;
// Chunk sizes: 1, ones that do not divide N (7, 333), one that does (250), N itself and larger than N.
const CHUNKS = [1, 7, 250, 333, 1000, 4096];

describe('coordinate-wise statistics vs brute force', () => {
  for (const K of [9, 10]) {
    const us = updates(K, K, N, 3);
    const med = refMedian(us);
    const tm = refTrimmed(us, 0.3);
    for (const chunk of CHUNKS) {
      it(`K=${K} (3 outliers), chunk ${chunk}: median exact, trimmed mean within 1e-6`, () => {
        // The median of float32 values (or the mean of two) rounds to the same float32 as the reference.
        expect(Array.from(coordinateMedian(source(us), { chunk }).aggregate)).toEqual(Array.from(med, Math.fround));
        const t = trimmedMean(source(us), 0.3, { chunk });
        expect(t.trimmedPerSide).toBe(Math.floor(0.3 * K)); // 3 of 10, 2 of 9
        expectClose(t.aggregate, tm, 1e-6);
      });
    }
  }

  it('the robust answers stay near the honest center while the mean does not', () => {
    const us = updates(1, 10, N, 3);
    const honestMean = refTrimmed(us.slice(0, 7), 0);
    const dev = (x: Float32Array): number => Math.sqrt(refDist(x, Float32Array.from(honestMean)) / N);
    expect(dev(coordinateMedian(source(us)).aggregate)).toBeLessThan(0.05);
    expect(dev(trimmedMean(source(us), 0.3).aggregate)).toBeLessThan(0.05);
    expect(dev(weightedMean(source(us)).aggregate)).toBeGreaterThan(1);
  });

  it('beta 0 is the plain mean; too few updates trims nothing and says so', () => {
    const us = updates(2, 4, 50, 0);
    expectClose(trimmedMean(source(us), 0).aggregate, refTrimmed(us, 0), 1e-6);
    expect(trimmedMean(source(us), 0.2).trimmedPerSide).toBe(0);
    expect(() => trimmedMean(source(us), 0.5)).toThrow(/trimmed-mean: option beta must be in \[0, 0.5\)/);
  });
});

describe('Krum / Multi-Krum vs brute force', () => {
  const K = 11;
  const f = 3;
  const us = updates(4, K, N, f);
  const scores = refKrumScores(us, f);
  const order = scores.map((s, k) => [s, k] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[1]);
  for (const chunk of CHUNKS) {
    it(`chunk ${chunk}: distances, scores, choice and average`, () => {
      const d = pairwiseSquaredDistances(source(us), { chunk });
      for (let a = 0; a < K; a++) for (let c = 0; c < K; c++) {
          // Float64 sums in another order: equal to ~1e-15 relative, not bit for bit.
          const want = a === c ? 0 : refDist(us[a]!, us[c]!);
          expect(Math.abs(d[a * K + c]! - want)).toBeLessThanOrEqual(1e-12 * want);
        }
      const r = krum(source(us), f, { chunk });
      Array.from(r.scores).forEach((s, k) => expect(Math.abs(s - scores[k]!)).toBeLessThan(1e-9 * scores[k]!));
      expect(r.selected).toEqual([order[0]]);
      expect(Array.from(r.aggregate)).toEqual(Array.from(us[order[0]!]!)); // Krum returns the chosen update itself
      const mk = multiKrum(source(us), f, 5, { chunk });
      expect(mk.selected).toEqual(order.slice(0, 5));
      const want = Float64Array.from({ length: N }, (_, i) => order.slice(0, 5).reduce((s, k) => s + us[k]![i]!, 0) / 5);
      expectClose(mk.aggregate, want, 1e-6);
    });
  }

  it('never selects an outlier; default m = K − f keeps exactly the honest ones here', () => {
    const mk = multiKrum(source(us), f);
    expect(mk.selected.slice().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('weighted multi-krum uses the source weights over the selected updates only', () => {
    const w = Array.from({ length: K }, (_, k) => k + 1);
    const mk = multiKrum(source(us, w), f, 4, { weighted: true, chunk: 128 });
    const sel = mk.selected;
    const tot = sel.reduce((s, k) => s + w[k]!, 0);
    expectClose(mk.aggregate, Float64Array.from({ length: N }, (_, i) => sel.reduce((s, k) => s + w[k]! * us[k]![i]!, 0) / tot), 1e-6);
  });

  it('validates K against f and m with errors naming the option and the fix', () => {
    const seven = updates(5, 7, 10, 0);
    expect(() => krum(source(seven), 3)).toThrow('krum: f=3 needs more than 2f+2 = 8 updates, got 7; lower f to at most 2 or wait for more updates per round');
    expect(() => krum(source(seven.slice(0, 2)), 0)).toThrow(/Krum needs at least 3 updates/);
    expect(() => multiKrum(source(seven), 2, 6)).toThrow(/option m must be an integer in \[1, K − f\] = \[1, 5\]/);
    expect(() => krum(source(seven), -1)).toThrow(/option f .* non-negative integer/);
    expect(krum(source(seven), 2).selected).toHaveLength(1);
  });
});

describe('norm bound', () => {
  it('norms match brute force, scales bound every update, and compose with the aggregators', () => {
    const us = updates(6, 6, N, 2);
    const { norms, scales } = normBound(source(us), 5, { chunk: 333 });
    us.forEach((u, k) => {
      expect(Math.abs(norms[k]! - Math.sqrt(refDist(u, new Float32Array(N))))).toBeLessThanOrEqual(1e-12 * norms[k]!);
      expect(scales[k]).toBe(norms[k]! > 5 ? (5 / norms[k]!) * (1 - 1e-6) : 1);
    });
    expect(scales.filter((s) => s < 1).length).toBe(2); // only the two outliers are scaled
    const bounded = scaleSource(source(us), scales);
    const clipped = us.map((u, k) => u.map((x) => x * scales[k]!));
    for (const c of clipped) expect(Math.sqrt(refDist(c, new Float32Array(N)))).toBeLessThanOrEqual(5);
    // Scaled then aggregated equals aggregating the pre-scaled updates.
    expect(Array.from(coordinateMedian(bounded, { chunk: 7 }).aggregate)).toEqual(Array.from(refMedian(clipped), Math.fround));
    expectClose(weightedMean(bounded, { chunk: 7 }).aggregate, refTrimmed(clipped, 0), 1e-6);
    expect(() => normBound(source(us), 0)).toThrow(/norm-bound: option maxNorm must be a positive finite number/);
  });
});

describe('inputs', () => {
  it('names the update and param of a non-finite value, and a short read', () => {
    const us = updates(7, 3, 20, 0);
    us[1]![13] = NaN;
    expect(() => coordinateMedian(source(us), { chunk: 8 })).toThrow('median: update 1 has NaN at param 13');
    const short: UpdateSource = { count: 1, numParams: 4, read: () => new Float32Array(3) };
    expect(() => weightedMean(short)).toThrow(/read\(0, 0, 4\) returned 3 values/);
    expect(() => coordinateMedian(source(us), { chunk: 0 })).toThrow(/option chunk must be a positive integer/);
  });
  it('reads each (update, range) exactly once per pass, in ranges of at most chunk', () => {
    const src = source(updates(8, 5, 100, 0));
    coordinateMedian(src, { chunk: 30 });
    expect(src.reads).toHaveLength(5 * 4);
    expect(src.reads.filter(([k]) => k === 0).map(([, o, l]) => [o, l])).toEqual([[0, 30], [30, 30], [60, 30], [90, 10]]);
  });
});

describe('memory', () => {
  // Honest measurement: the updates are never materialized (each chunk is generated on read into
  // ONE reused buffer), so every ArrayBuffer byte the process gains during the call is the
  // aggregator's own. process.memoryUsage().arrayBuffers is sampled on every read; a K × n design
  // would show K model sizes, chunked processing shows ~1 model (the output) + the K × chunk buffer.
  function generated(K: number, n: number): UpdateSource {
    const scratch = new Float32Array(4096);
    return {
      count: K,
      numParams: n,
      read(k, offset, length) {
        const out = scratch.subarray(0, length);
        for (let j = 0; j < length; j++) out[j] = Math.sin(k * 12.9898 + (offset + j) * 78.233) * (k === 0 ? 100 : 1);
        return out;
      },
    };
  }
  function peakExtra(run: (src: UpdateSource) => unknown, src: UpdateSource): number {
    const base = process.memoryUsage().arrayBuffers;
    let peak = base;
    const read = src.read;
    const sampled: UpdateSource = {
      count: src.count,
      numParams: src.numParams,
      read(k, o, l) {
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
        return read(k, o, l);
      },
    };
    run(sampled);
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    return peak - base;
  }

  it('median and multi-krum over 64 updates of 262,144 params stay within 2 model sizes + 2 × the chunk buffer, flat in K', () => {
    const n = 262_144; // 1 MiB per update; all 64 would be 64 MiB
    const chunk = 4096;
    const model = 4 * n;
    const results: Record<string, number[]> = {};
    for (const K of [8, 64]) {
      const budget = 2 * model + 2 * 4 * K * chunk + 8 * K * K + (1 << 20);
      const med = peakExtra((s) => coordinateMedian(s, { chunk }), generated(K, n));
      const mk = peakExtra((s) => multiKrum(s, 2, undefined, { chunk }), generated(K, n));
      expect(med).toBeLessThan(budget);
      expect(mk).toBeLessThan(budget);
      results[K] = [med, mk];
      if (K === 64) {
        // Control: the same probe does see a design that holds all K updates (so the bounds above mean something).
        const naive = peakExtra((s) => {
          const all: Float32Array[] = [];
          for (let k = 0; k < s.count; k++) for (let o = 0; o < s.numParams; o += chunk) all.push(s.read(k, o, Math.min(chunk, s.numParams - o)).slice());
          return all.length;
        }, generated(K, n));
        expect(naive).toBeGreaterThan(budget);
      }
    }
    // 8× the updates must not cost anything like 56 more model sizes: allow the bigger K × chunk buffer + K² matrix + 1 MiB slack.
    for (const i of [0, 1]) expect(results[64]![i]! - results[8]![i]!).toBeLessThan(2 * 4 * (64 - 8) * chunk + 8 * 64 * 64 + (1 << 20));
  });
});
