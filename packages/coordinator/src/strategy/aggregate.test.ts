/** Tests for StreamingFedAvg (both kernels) against a float64 reference, plus slot/backpressure semantics and the reference functions. */

import { describe, expect, it } from 'vitest';
import { StreamingFedAvg, weightedAverage, type KernelKind, type UpdateSlot } from './aggregate.js';
import { createRng, l2Norm } from '@fedge/proto';
import { simdSupported } from './simd.js';

/** Deterministic PRNG so a failure reproduces from its seed. */
const rng = createRng;

/** Parameter-like values: mostly O(1), some tiny, some large, mixed signs. */
function randomParams(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    const mag = u < 0.05 ? 1e-30 : u < 0.1 ? 1e4 : 1;
    x[i] = (r() * 2 - 1) * mag;
  }
  return x;
}

const bytesOf = (x: Float32Array): Uint8Array => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
const bitsOf = (x: Float32Array): Uint32Array => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** Write an update into a slot in uneven chunks, as the network delivers it. */
function writeChunked(slot: UpdateSlot, x: Float32Array, r: () => number): void {
  const bytes = bytesOf(x);
  for (let off = 0; off < bytes.length; ) {
    const len = Math.min(bytes.length - off, 1 + Math.floor(r() * 4099));
    slot.write(off, bytes.subarray(off, off + len));
    off += len;
  }
}

const KERNELS: KernelKind[] = simdSupported() ? ['wasm-simd', 'js'] : ['js'];
const U = 2 ** -24; // float32 unit roundoff

describe('SIMD availability', () => {
  it('Node 20 validates the SIMD kernel module, so wasm-simd is the default', () => {
    expect(simdSupported()).toBe(true);
    const agg = StreamingFedAvg.create(8);
    expect(agg.kernel).toBe('wasm-simd');
    agg.dispose();
  });
});

describe.each(KERNELS)('StreamingFedAvg (%s)', (kernel) => {
  const SIZES = [1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1000, 4099, 65537];

  it('matches a float64 weighted mean within the float32 summation bound', async () => {
    const r = rng(kernel === 'js' ? 11 : 7);
    const weightKinds: Array<(r: () => number) => number> = [
      () => 1, // plain mean
      (r) => 1 + Math.floor(r() * 6000), // example counts
      (r) => 10 ** (r() * 12 - 6), // very uneven: 1e-6 .. 1e6
      (r) => r() * 0.999 + 1e-3, // fractional
    ];
    let worstRatio = 0;
    for (const n of [...SIZES, 1 + Math.floor(r() * 20000)]) {
      for (const weightOf of weightKinds) {
        const k = 1 + Math.floor(r() * 12);
        const agg = StreamingFedAvg.create(n, { kernel });
        const sum = new Float64Array(n);
        const absSum = new Float64Array(n);
        let total = 0;
        for (let j = 0; j < k; j++) {
          const x = randomParams(n, r);
          const w = weightOf(r);
          const slot = await agg.acquire();
          writeChunked(slot, x, r);
          expect(agg.firstNonFinite(slot)).toBe(-1);
          agg.fold(slot, w);
          agg.release(slot);
          for (let i = 0; i < n; i++) {
            sum[i] += w * x[i]!;
            absSum[i] += Math.abs(w * x[i]!);
          }
          total += w;
        }
        expect(agg.count).toBe(k);
        expect(agg.totalWeight).toBeCloseTo(total, 12);
        const got = agg.result();
        // Bound (Higham, recursive summation): folding k products in float32 commits at most
        // k+1 roundings per element on partial sums bounded by sum|w x|, plus 1 for rounding w
        // to f32 (wasm call boundary): |acc - sum| <= (k+2) u sum|w x| to first order. The final
        // f64 divide + round to f32 adds u |ref|. Slack: (k+3) instead of (k+2), and 1e-37
        // absolute for subnormal-range products. Relative to sum|w x| (not |sum|), so
        // cancellation cannot make an honest result fail.
        for (let i = 0; i < n; i++) {
          const ref = sum[i]! / total;
          const bound = ((k + 3) * U * absSum[i]!) / total + U * Math.abs(ref) + 1e-37;
          const err = Math.abs(got[i]! - ref);
          if (!(err <= bound)) throw new Error(`n=${n} k=${k} i=${i}: |${got[i]} - ${ref}| = ${err} > ${bound}`);
          worstRatio = Math.max(worstRatio, err / bound);
        }
        agg.dispose();
      }
    }
    // The bound is tight enough to mean something: the worst observed error uses a visible
    // part of it (~0.44 at the time of writing, for both kernels).
    expect(worstRatio).toBeGreaterThan(0.1);
  });

  it('agrees with weightedAverage and stays in float32 range for huge weights', async () => {
    const r = rng(3);
    const n = 333;
    const updates = Array.from({ length: 5 }, (_, j) => ({ params: randomParams(n, r), weight: [1e30, 1, 3e29, 7, 1e-20][j]! }));
    const agg = StreamingFedAvg.create(n, { kernel, slots: 1 });
    for (const u of updates) {
      const slot = await agg.acquire();
      slot.view.set(u.params);
      agg.fold(slot, u.weight);
      agg.release(slot);
    }
    const ref = weightedAverage(updates);
    const got = agg.result();
    for (let i = 0; i < n; i++) expect(Math.abs(got[i]! - ref[i]!)).toBeLessThanOrEqual(8 * U * 1e4 + 1e-37);
    agg.dispose();
  });

  it('firstNonFinite finds NaN, +Inf, -Inf at any position incl. the tail; -1 when finite', async () => {
    const r = rng(5);
    for (const n of SIZES) {
      const agg = StreamingFedAvg.create(n, { kernel });
      const slot = await agg.acquire();
      const clean = randomParams(n, r);
      slot.view.set(clean);
      expect(agg.firstNonFinite(slot)).toBe(-1);
      const positions = new Set([0, n - 1, n >> 1, Math.floor(r() * n), n - 1 - (n % 16)].filter((p) => p >= 0 && p < n));
      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const p of positions) {
          slot.view.set(clean);
          slot.view[p] = bad;
          expect(agg.firstNonFinite(slot)).toBe(p);
          if (p + 1 < n) {
            slot.view[n - 1] = NaN; // a later one must not mask the first
            expect(agg.firstNonFinite(slot)).toBe(p);
          }
        }
      }
      // NaN payloads and the largest finite values: only the exponent decides
      slot.view.set(clean);
      slot.view[0] = 3.4028234663852886e38;
      slot.view[n - 1] = -3.4028234663852886e38;
      expect(agg.firstNonFinite(slot)).toBe(-1);
      new Uint32Array(slot.view.buffer, slot.view.byteOffset, n)[n - 1] = 0xffc00001; // negative NaN, odd payload
      expect(agg.firstNonFinite(slot)).toBe(n - 1);
      agg.dispose();
    }
  });

  it('a slot written but never folded leaves the result bit-identical', async () => {
    const r = rng(9);
    const n = 1021;
    const updates = Array.from({ length: 6 }, () => ({ x: randomParams(n, r), w: 1 + r() * 100 }));
    const run = async (withAbandoned: boolean): Promise<Float32Array> => {
      const agg = StreamingFedAvg.create(n, { kernel, slots: 2 });
      for (const [j, u] of updates.entries()) {
        if (withAbandoned && j === 2) {
          // an agent that dies mid-upload: half its bytes land, then the slot is released
          const dead = await agg.acquire();
          dead.write(0, bytesOf(randomParams(n, r)).subarray(0, 2000));
          agg.release(dead);
          // an update whose last chunk carries a NaN: written fully, rejected by validation
          const poisoned = await agg.acquire();
          const bad = randomParams(n, r);
          bad[n - 1] = NaN;
          writeChunked(poisoned, bad, r);
          expect(agg.firstNonFinite(poisoned)).toBe(n - 1);
          agg.release(poisoned);
        }
        const slot = await agg.acquire();
        writeChunked(slot, u.x, r);
        expect(agg.firstNonFinite(slot)).toBe(-1);
        agg.fold(slot, u.w);
        agg.release(slot);
      }
      const out = agg.result();
      agg.dispose();
      return out;
    };
    const clean = await run(false);
    const dirty = await run(true);
    expect(Array.from(bitsOf(dirty))).toEqual(Array.from(bitsOf(clean)));
  });

  it('write() bounds: exact fit works, overflow and bad offsets throw RangeError, released handles throw', async () => {
    const n = 10;
    const agg = StreamingFedAvg.create(n, { kernel, slots: 1 });
    const slot = await agg.acquire();
    expect(slot.numParams).toBe(n);
    expect(slot.view.length).toBe(n);
    slot.write(36, new Uint8Array([0, 0, 0x80, 0x3f])); // 1.0f little-endian, last element
    expect(slot.view[9]).toBe(1);
    expect(() => slot.write(37, new Uint8Array(4))).toThrow(RangeError);
    expect(() => slot.write(0, new Uint8Array(41))).toThrow(RangeError);
    expect(() => slot.write(-1, new Uint8Array(1))).toThrow(RangeError);
    expect(() => slot.write(0.5, new Uint8Array(1))).toThrow(RangeError);
    slot.write(40, new Uint8Array(0)); // empty chunk at the end is fine
    agg.release(slot);
    agg.release(slot); // idempotent
    expect(() => slot.write(0, new Uint8Array(4))).toThrow(/released/);
    expect(() => agg.fold(slot, 1)).toThrow(/released/);
    expect(() => agg.firstNonFinite(slot)).toThrow(/released/);
    // the stale handle cannot reach the next lease of the same slot
    const next = await agg.acquire();
    next.view.fill(2);
    expect(() => slot.write(0, new Uint8Array(4).fill(0xff))).toThrow();
    expect(Array.from(next.view)).toEqual(new Array(n).fill(2));
    agg.dispose();
  });

  it('acquire() waits FIFO when slots are exhausted, resumes on release, honours abort', async () => {
    const agg = StreamingFedAvg.create(4, { kernel, slots: 2 });
    const a = await agg.acquire();
    const b = await agg.acquire();
    const order: string[] = [];
    const c = agg.acquire().then((s) => (order.push('c'), s));
    const ac = new AbortController();
    const d = agg.acquire(ac.signal).then(
      (s) => (order.push('d'), s),
      (e: unknown) => (order.push('d-aborted'), e),
    );
    const e = agg.acquire().then((s) => (order.push('e'), s));
    await new Promise((res) => setImmediate(res));
    expect(order).toEqual([]); // all three are blocked

    ac.abort(new Error('agent gone'));
    await new Promise((res) => setImmediate(res));
    expect(order).toEqual(['d-aborted']);
    expect(((await d) as Error).message).toBe('agent gone');

    agg.release(a);
    const cs = await c;
    expect(order).toEqual(['d-aborted', 'c']);
    agg.release(b);
    const es = await e;
    expect(order).toEqual(['d-aborted', 'c', 'e']);
    agg.release(cs);
    agg.release(es);
    await expect(agg.acquire(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');

    // dispose rejects queued waiters
    await agg.acquire();
    await agg.acquire();
    const pending = agg.acquire();
    agg.dispose();
    await expect(pending).rejects.toThrow(/disposed/);
  });

  it('loadAccumulator / accumulatorView round trip resumes bit-exactly', async () => {
    const r = rng(13);
    const n = 777;
    const xs = Array.from({ length: 6 }, () => randomParams(n, r));
    const ws = [3, 1, 4, 1, 5, 9];
    const a = StreamingFedAvg.create(n, { kernel });
    const foldInto = async (agg: StreamingFedAvg, j: number): Promise<void> => {
      const slot = await agg.acquire();
      slot.view.set(xs[j]!);
      agg.fold(slot, ws[j]!);
      agg.release(slot);
    };
    for (let j = 0; j < 3; j++) await foldInto(a, j);
    const snapshot = { acc: copyOf(a.accumulatorView()), count: a.count, totalWeight: a.totalWeight };

    const b = StreamingFedAvg.create(n, { kernel });
    b.loadAccumulator(snapshot.acc, snapshot.count, snapshot.totalWeight);
    expect(Array.from(bitsOf(b.accumulatorView()))).toEqual(Array.from(bitsOf(snapshot.acc)));
    expect(b.count).toBe(3);
    expect(b.totalWeight).toBe(8);
    for (let j = 3; j < 6; j++) {
      await foldInto(a, j);
      await foldInto(b, j);
    }
    expect(Array.from(bitsOf(b.result()))).toEqual(Array.from(bitsOf(a.result())));

    // a corrupt snapshot is refused and leaves the state untouched
    const before = copyOf(b.accumulatorView());
    const bad = copyOf(snapshot.acc);
    bad[5] = NaN;
    expect(() => b.loadAccumulator(bad, 3, 8)).toThrow(RangeError);
    expect(() => b.loadAccumulator(snapshot.acc.subarray(1), 3, 8)).toThrow(RangeError);
    expect(() => b.loadAccumulator(snapshot.acc, 0, 8)).toThrow(RangeError);
    expect(Array.from(bitsOf(b.accumulatorView()))).toEqual(Array.from(bitsOf(before)));
    expect(b.count).toBe(6);

    b.reset();
    expect(b.count).toBe(0);
    expect(b.totalWeight).toBe(0);
    expect(b.accumulatorView().every((v) => v === 0)).toBe(true);
    expect(() => b.result()).toThrow(/no update/);
    a.dispose();
    b.dispose();
  });

  it('rejects bad weights, foreign slots, bad sizes, and resultInto length mismatch', async () => {
    const agg = StreamingFedAvg.create(8, { kernel });
    const other = StreamingFedAvg.create(8, { kernel });
    const slot = await agg.acquire();
    for (const w of [0, -1, NaN, Infinity]) expect(() => agg.fold(slot, w)).toThrow(RangeError);
    expect(agg.count).toBe(0);
    const foreign = await other.acquire();
    expect(() => agg.fold(foreign, 1)).toThrow(TypeError);
    expect(() => agg.release(foreign)).toThrow(TypeError);
    agg.fold(slot, 2);
    expect(() => agg.resultInto(new Float32Array(7))).toThrow(RangeError);
    expect(() => StreamingFedAvg.create(0)).toThrow(RangeError);
    expect(() => StreamingFedAvg.create(4, { slots: 0 })).toThrow(RangeError);
    agg.dispose();
    other.dispose();
  });
});

describe('reference functions', () => {
  it('weightedAverage: float64 internally, validates input', () => {
    const a = new Float32Array([1, 2, 16777216]);
    const b = new Float32Array([3, 4, 1]);
    const out = weightedAverage([
      { params: a, weight: 1 },
      { params: b, weight: 3 },
    ]);
    expect(Array.from(out)).toEqual([2.5, 3.5, Math.fround((16777216 + 3) / 4)]);
    expect(() => weightedAverage([])).toThrow(RangeError);
    expect(() => weightedAverage([{ params: a, weight: 0 }])).toThrow(RangeError);
    expect(() => weightedAverage([{ params: a, weight: -1 }, { params: b, weight: 2 }])).toThrow(RangeError);
    expect(() => weightedAverage([{ params: a, weight: 1 }, { params: new Float32Array(2), weight: 1 }])).toThrow(RangeError);
  });

  it('l2Norm: exact small cases, no float32 overflow, NaN propagates', () => {
    expect(l2Norm(new Float32Array([3, 4]))).toBe(5);
    expect(l2Norm(new Float32Array(0))).toBe(0);
    const big = new Float32Array([3e38, 3e38]);
    expect(l2Norm(big)).toBeCloseTo(Math.fround(3e38) * Math.SQRT2, -30);
    expect(l2Norm(new Float32Array([1, NaN]))).toBeNaN();
  });
});

function copyOf(x: Float32Array): Float32Array {
  return Float32Array.from(x);
}
