import { describe, expect, it } from 'vitest';
import { createRng } from '../rng.js';
import { RejectedUpdateError } from '../errors.js';
import {
  ErrorFeedback,
  INDEX_BITMAP,
  INDEX_VARINT,
  PipelineDecoder,
  QUANT_BLOCK,
  bitmapBytes,
  checkEncodedSize,
  createDecoder,
  decodeEncoded,
  decodePipeline,
  encodePipeline,
  maxPipelineBytes,
  parsePipeline,
  pipelineEncoding,
  topkCount,
  varintIndexBytes,
  withDensity,
  type Pipeline,
} from './index.js';

function randn(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng() - 0.5) * 2 * (rng() < 0.01 ? 50 : 1);
  return x;
}

const norm = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

/** Decodes through the streaming decoder in chunks of `chunk` bytes, into memory holding garbage. */
function roundTrip(p: Pipeline, bytes: Uint8Array, n: number, chunk = 1 << 20): Float32Array {
  const out = new Float32Array(n).fill(7);
  const dec = createDecoder(pipelineEncoding(p), bytes.byteLength, out);
  if (!dec) return new Float32Array(bytes.slice().buffer);
  for (let o = 0; o < bytes.length; o += chunk) dec.write(bytes.subarray(o, o + chunk));
  dec.end();
  return out;
}

const reason = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    if (err instanceof RejectedUpdateError) return `${err.reason}: ${err.message}`;
    throw err;
  }
  return 'accepted';
};

const UPLINK = ['float32', 'fp16', 'int8', 'q8', 'q4', 'q2', 'topk:0.01', 'topk:0.1+fp16', 'topk:0.001+q8', 'topk:0.05+q4', 'topk:0.3+q2', 'topk:0.5+int8'];
const DOWNLINK = ['delta+fp16', 'delta+q8', 'delta', 'delta+q4'];

describe('pipeline specs', () => {
  it('parses stages into a canonical spec', () => {
    expect(parsePipeline(' topk:0.0010 + q8 ').spec).toBe('topk:0.001+q8');
    expect(parsePipeline('none')).toMatchObject({ spec: 'float32', values: 'float32', delta: false });
    expect(parsePipeline('topk:0.01+float32').spec).toBe('topk:0.01');
    expect(parsePipeline('delta+fp16', 'downlink')).toMatchObject({ spec: 'delta+fp16', delta: true, values: 'fp16' });
    expect(withDensity(parsePipeline('topk:0.001+q8'), 0.25).spec).toBe('topk:0.25+q8');
    expect(withDensity(parsePipeline('topk:0.001+q8'), 0.0001).spec).toBe('topk:0.001+q8');
  });

  it('refuses bad specs naming the option and the stage', () => {
    expect(() => parsePipeline('topk:0.01+q3', 'uplink', '--compression')).toThrow(/^--compression: unknown stage "q3" in "topk:0.01\+q3"/);
    expect(() => parsePipeline('topk:2')).toThrow(/compression.uplink: "topk:2": topk needs a fraction in \(0, 0.5\]/);
    expect(() => parsePipeline('topk')).toThrow(/topk needs a fraction/);
    expect(() => parsePipeline('q8+topk:0.1')).toThrow(/"topk:0.1" in "q8\+topk:0.1": topk must come before the value codec/);
    expect(() => parsePipeline('q8+q4')).toThrow(/must come last and at most once/);
    expect(() => parsePipeline('delta+fp16')).toThrow(/compression.uplink: "delta" is for the downlink/);
    expect(() => parsePipeline('delta+topk:0.1', 'downlink')).toThrow(/compression.downlink: topk on the downlink/);
    expect(() => parsePipeline('q8', 'downlink')).toThrow(/compression.downlink: "q8": a downlink pipeline .* starts with delta/);
    expect(() => parsePipeline('')).toThrow(/compression.uplink: empty/);
    expect(() => parsePipeline('fp16:3')).toThrow(/"fp16" takes no argument/);
  });
});

describe('pipeline codecs', () => {
  it('every codec and composition round-trips on random shapes, in any chunking, within its precision', () => {
    const rng = createRng(3);
    for (const spec of [...UPLINK, ...DOWNLINK]) {
      const p = parsePipeline(spec, DOWNLINK.includes(spec) ? 'downlink' : 'uplink');
      for (const n of [1, 7, 1023, 1024, 1025, 5000]) {
        const x = randn(n, Math.floor(rng() * 1e6));
        const bytes = encodePipeline(x, p, { rng });
        expect(bytes.byteLength, `${spec} n=${n}`).toBeLessThanOrEqual(maxPipelineBytes(p, n));
        checkEncodedSize(pipelineEncoding(p), bytes.byteLength, n);
        const y = roundTrip(p, bytes, n);
        for (const chunk of [1, 3, 1000]) expect(roundTrip(p, bytes, n, chunk), `${spec} chunk ${chunk}`).toEqual(y);
        const kept = p.topk === undefined ? n : topkCount(n, p.topk);
        let nonzero = 0;
        const maxAbs = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const s = { float32: 0, fp16: 1e-3, int8: 1 / 127, q8: 1 / 127, q4: 1 / 7, q2: 1 }[p.values]!;
        for (let i = 0; i < n; i++) {
          if (y[i] === 0) continue;
          nonzero++;
          // A decoded value lies within one quantization step (relative to its block's max) of the input.
          expect(Math.abs(y[i]! - x[i]!), `${spec} n=${n} i=${i}`).toBeLessThanOrEqual(p.values === 'fp16' ? Math.abs(x[i]!) * s + 1e-7 : maxAbs * s * 1.0001 + 1e-7);
        }
        expect(nonzero).toBeLessThanOrEqual(kept);
        if (p.topk !== undefined) {
          // top-k keeps the largest: every dropped value is no larger than the smallest kept one.
          const keptIdx = [...y.keys()].filter((i) => y[i] !== 0);
          const minKept = Math.min(...keptIdx.map((i) => Math.abs(x[i]!)));
          for (let i = 0; i < n; i++) if (y[i] === 0 && p.values === 'float32') expect(Math.abs(x[i]!)).toBeLessThanOrEqual(minKept);
        }
      }
    }
  });

  it('stochastic quantization is unbiased and its variance respects the QSGD bound', () => {
    const n = 2 * QUANT_BLOCK;
    const x = randn(n, 11);
    const rng = createRng(5);
    for (const [name, s] of [['q8', 127], ['q4', 7], ['q2', 1]] as const) {
      const p = parsePipeline(name);
      const draws = 2000;
      const sum = new Float64Array(n);
      let sqErr = 0;
      for (let d = 0; d < draws; d++) {
        const y = new Float32Array(n);
        decodePipeline(encodePipeline(x, p, { rng }), p, y);
        for (let i = 0; i < n; i++) {
          sum[i]! += y[i]!;
          sqErr += (y[i]! - x[i]!) ** 2;
        }
      }
      const variance = sqErr / draws;
      // QSGD (Alistarh et al. 2017, Lemma 3.1): E||Q(v) - v||^2 <= min(d/s^2, sqrt(d)/s) ||v||^2, per block of d values.
      let bound = 0;
      for (let b = 0; b < n; b += QUANT_BLOCK) {
        const blk = x.subarray(b, b + QUANT_BLOCK);
        const d = blk.length;
        bound += Math.min(d / s ** 2, Math.sqrt(d) / s) * norm(blk) ** 2;
      }
      expect(variance, name).toBeLessThanOrEqual(bound);
      expect(variance, name).toBeGreaterThan(0);
      // The mean of the draws converges to x: its error is within 5 standard errors of the per-value spread.
      const blockMax = (i: number): number => x.subarray(i - (i % QUANT_BLOCK), i - (i % QUANT_BLOCK) + QUANT_BLOCK).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const step = blockMax(i) / s;
        worst = Math.max(worst, Math.abs(sum[i]! / draws - x[i]!) / (step / 2 / Math.sqrt(draws)));
      }
      expect(worst, `${name}: largest error of the mean in standard errors`).toBeLessThan(5);
    }
  });

  it('index coding picks the smaller of varint gaps and bitmap', () => {
    const n = 10000;
    for (const [f, form] of [[0.001, INDEX_VARINT], [0.01, INDEX_VARINT], [0.3, INDEX_BITMAP], [0.5, INDEX_BITMAP]] as const) {
      const p = parsePipeline(`topk:${f}`);
      const bytes = encodePipeline(randn(n, 2), p);
      expect(bytes[0], `topk:${f}`).toBe(form);
      const indexBytes = new DataView(bytes.buffer).getUint32(5, true);
      const k = topkCount(n, f);
      expect(indexBytes).toBe(form === INDEX_BITMAP ? bitmapBytes(n) : indexBytes);
      if (form === INDEX_VARINT) expect(indexBytes).toBeLessThanOrEqual(bitmapBytes(n));
      else expect(indexBytes).toBeLessThan(varintIndexBytes(Uint32Array.from({ length: k }, (_, j) => Math.floor((j * n) / k))) + 1);
      expect(bytes.byteLength).toBe(9 + indexBytes + 4 * k);
    }
    // 0.1% of a 1.2M-param model: ~2 bytes per index (gaps ~1,000) instead of 4, 1 per value: > 1,000x smaller than float32.
    const big = encodePipeline(randn(1_200_000, 4), parsePipeline('topk:0.001+q8'));
    expect(big.byteLength / (4 * 1_200_000)).toBeLessThan(0.001);
  });

  it('the clip bound holds on what is decoded, for every pipeline', () => {
    const S = 0.5;
    for (const spec of UPLINK) {
      const p = parsePipeline(spec);
      for (let seed = 1; seed < 6; seed++) {
        const x = randn(3000, seed);
        const f = S / norm(x);
        for (let i = 0; i < x.length; i++) x[i]! *= f; // on the bound, as a clipped update is
        const y = new Float32Array(x.length);
        decodePipeline(encodePipeline(x, p, { maxNorm: S, rng: createRng(seed) }), p, y);
        // Never longer than the bound, nor than the (float32-rounded) input itself.
        expect(norm(y), `${spec} seed ${seed}`).toBeLessThanOrEqual(Math.max(S, norm(x)));
      }
    }
  });

  it('error feedback: sent + new residual = input + old residual, for every pipeline, with and without momentum', () => {
    const n = 2500;
    for (const spec of UPLINK) {
      const p = parsePipeline(spec);
      for (const momentum of [0, 0.9]) {
        const ef = new ErrorFeedback({ momentum });
        let velocity = new Float32Array(n);
        let oldResidual = new Float32Array(n);
        for (let round = 0; round < 3; round++) {
          const input = randn(n, round + 20);
          const delta = input.slice();
          ef.apply(delta);
          const u = input.map((v, i) => momentum * velocity[i]! + v);
          const payload = encodePipeline(delta, p);
          ef.update(delta, payload, pipelineEncoding(p));
          const sent = decodeEncoded(pipelineEncoding(p), payload, n);
          const restored = ErrorFeedback.restore(ef.serialize()!, { momentum });
          const next = new Float32Array(n);
          restored.apply(next); // residual (+ momentum x velocity) now carried
          for (let i = 0; i < n; i += 97) {
            const residual = delta[i]! - sent[i]!;
            expect(sent[i]! + residual, `${spec} m=${momentum}`).toBeCloseTo(u[i]! + oldResidual[i]!, 4);
            const uMasked = sent[i] !== 0 ? 0 : u[i]!;
            expect(next[i], `${spec} m=${momentum} restored`).toBeCloseTo(residual + momentum * (momentum > 0 ? uMasked : 0), 4);
          }
          oldResidual = delta.map((v, i) => v - sent[i]!);
          velocity = momentum > 0 ? u.map((v, i) => (sent[i] !== 0 ? 0 : v)) : velocity;
        }
      }
    }
  });

  it('rejects malformed payloads of every form as data', () => {
    const n = 1000;
    const out = new Float32Array(n);
    const sparse = parsePipeline('topk:0.01+q8');
    const enc = pipelineEncoding(sparse);
    const good = encodePipeline(randn(n, 1), sparse);
    const mutate = (f: (b: Uint8Array, dv: DataView) => void): Uint8Array => {
      const b = good.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const feed = (b: Uint8Array, e = enc, p = sparse): string => reason(() => {
      const d = new PipelineDecoder(p, b.byteLength, out);
      d.write(b);
      d.end();
    });
    expect(feed(good)).toBe('accepted');
    expect(feed(mutate((b) => (b[0] = 7)))).toMatch(/^malformed: topk:0.01\+q8: index form 7/);
    expect(feed(mutate((_, dv) => dv.setUint32(1, 11, true)))).toMatch(/^oversized: .*11 values kept, the spec allows at most 10/);
    expect(feed(mutate((b) => (b[9] = 0xff)))).toMatch(/^(bad_index|size_mismatch|malformed)/); // a gap running past the section
    expect(feed(mutate((b) => b.fill(0xff, 9, 9 + 5)))).toMatch(/^(malformed|bad_index)/);
    const last = 9 + new DataView(good.buffer).getUint32(5, true) - 1;
    expect(feed(mutate((b) => (b[last] = 0x7f)))).toMatch(/^bad_index: .*must be < 1000/);
    expect(feed(mutate((_, dv) => dv.setFloat32(9 + dv.getUint32(5, true), NaN, true)))).toMatch(/^non_finite: q8: block 0 has step NaN/);
    expect(feed(mutate((_, dv) => dv.setFloat32(9 + dv.getUint32(5, true), -1, true)))).toMatch(/^non_finite/);
    expect(feed(mutate((b) => (b[b.length - 1] = 0x80)))).toMatch(/^malformed: q8: .*level -128/);
    expect(reason(() => new PipelineDecoder(sparse, good.byteLength + 1, out).end())).toMatch(/^truncated/);
    expect(reason(() => checkEncodedSize(enc, maxPipelineBytes(sparse, n) + 1, n))).toMatch(/^size_mismatch: total_bytes: at most/);
    expect(reason(() => checkEncodedSize('pipe:topk:0.01+q9', 100, n))).toMatch(/^bad_encoding: encoding: unknown stage "q9"/);
    // Bitmap: more bits set than declared, and a bit beyond n.
    const dense = parsePipeline('topk:0.5');
    const bm = encodePipeline(randn(n, 2), dense);
    expect(bm[0]).toBe(INDEX_BITMAP);
    const extra = bm.slice();
    extra[9] = 0xff;
    expect(feed(extra, undefined, dense)).toMatch(/^size_mismatch: topk:0.5: bitmap sets/);
    const m = 1001;
    const bm2 = encodePipeline(randn(m, 2), dense);
    bm2[9 + bitmapBytes(m) - 1]! |= 0x80; // index 1007 >= 1001
    expect(reason(() => decodePipeline(bm2, dense, new Float32Array(m)))).toMatch(/^(bad_index|size_mismatch)/);
    // fp16 Inf / NaN values, and dense sizes exact.
    const fp16 = parsePipeline('fp16');
    const h = encodePipeline(randn(10, 3), fp16);
    h[5] = 0x7c;
    h[4] = 0;
    expect(reason(() => decodePipeline(h, fp16, new Float32Array(10)))).toMatch(/^non_finite: fp16: value at index 2 is Infinity/);
    expect(reason(() => checkEncodedSize('pipe:fp16', 19, 10))).toMatch(/^size_mismatch: total_bytes: expected 20/);
    expect(reason(() => decodePipeline(new Uint8Array(21), fp16, new Float32Array(10)))).toMatch(/^size_mismatch/);
  });
});
