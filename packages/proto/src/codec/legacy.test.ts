import { describe, expect, it } from 'vitest';
import { ErrorFeedback, INT8_BLOCK, createDecoder, encodeUpdate, kthLargestAbs, maxEncodedBytes, type CodecSpec, ENCODING_OF } from './index.js';
import { createRng } from '../rng.js';

function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = createRng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng() - 0.5) * 2 * scale * (rng() < 0.01 ? 50 : 1);
  return x;
}

/** Decodes `bytes` fed in chunks of `chunk` bytes (the split points land anywhere inside blocks and records). */
function decode(spec: CodecSpec, bytes: Uint8Array, n: number, chunk = 1 << 20): Float32Array {
  const out = new Float32Array(n).fill(7); // garbage from a previous upload
  const dec = createDecoder(ENCODING_OF[spec.codec], bytes.byteLength, out);
  if (!dec) return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  for (let p = 0; p < bytes.length; p += chunk) dec.write(bytes.subarray(p, Math.min(bytes.length, p + chunk)));
  dec.end();
  return out;
}

const norm = (x: Float32Array): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0));

describe('update codecs', () => {
  it('int8: per-block error at most half a step, size 0.254x, identical whatever the chunking', () => {
    const n = 5 * INT8_BLOCK + 37;
    const x = randn(n, 1);
    const bytes = encodeUpdate(x, { codec: 'int8' });
    expect(bytes.byteLength).toBe(maxEncodedBytes({ codec: 'int8' }, n));
    expect(bytes.byteLength / (4 * n)).toBeLessThan(0.26);
    const y = decode({ codec: 'int8' }, bytes, n);
    for (let b = 0; b * INT8_BLOCK < n; b++) {
      const blk = x.subarray(b * INT8_BLOCK, (b + 1) * INT8_BLOCK);
      const step = Math.max(...blk.map(Math.abs)) / 127;
      for (let i = 0; i < blk.length; i++) expect(Math.abs(y[b * INT8_BLOCK + i]! - blk[i]!)).toBeLessThanOrEqual(step / 2 + 1e-7);
    }
    for (const chunk of [1, 3, 4, 5, 1023, 1028, 4099]) expect(decode({ codec: 'int8' }, bytes, n, chunk)).toEqual(y);
  });

  it('int8 with maxNorm: the decoded update never exceeds the clip norm', () => {
    const x = randn(3000, 2);
    const s = norm(x) * 0.999; // a clipped vector sits exactly on the bound; rounding could push it over
    x.forEach((v, i) => (x[i] = v * (s / norm(x))));
    const y = decode({ codec: 'int8' }, encodeUpdate(x, { codec: 'int8' }, s), x.length);
    expect(norm(y)).toBeLessThanOrEqual(s);
    expect(norm(y)).toBeGreaterThan(s * 0.99);
  });

  it('topk: keeps exactly the k largest magnitudes, in index order, zeros the rest', () => {
    const n = 10_000;
    const x = randn(n, 3);
    const spec: CodecSpec = { codec: 'topk', topkFraction: 0.05 };
    const bytes = encodeUpdate(x, spec);
    expect(bytes.byteLength).toBe(4 + 8 * 500);
    const y = decode(spec, bytes, n, 13);
    const kept = [...y].filter((v) => v !== 0).length;
    expect(kept).toBe(500);
    const t = kthLargestAbs(x, 500);
    for (let i = 0; i < n; i++) expect(y[i]).toBe(Math.abs(x[i]!) >= t ? x[i] : 0);
    expect(norm(y)).toBeLessThanOrEqual(norm(x));
  });

  it('topk: ties at the threshold are broken by index so exactly k are sent', () => {
    const x = new Float32Array([1, -1, 1, 1, 0.5, -1]);
    const y = decode({ codec: 'topk' }, encodeUpdate(x, { codec: 'topk', topkFraction: 0.5 }), 6);
    expect([...y]).toEqual([1, -1, 1, 0, 0, 0]);
  });

  it('topk at the largest fraction is accepted for an odd number of params (both ends count with ceil)', () => {
    const n = 101;
    const spec: CodecSpec = { codec: 'topk', topkFraction: 0.5 };
    const bytes = encodeUpdate(randn(n, 9), spec);
    expect(bytes.byteLength).toBe(4 + 8 * 51);
    expect([...decode(spec, bytes, n)].filter((v) => v !== 0)).toHaveLength(51);
  });

  it('kthLargestAbs matches a sort', () => {
    const x = randn(2001, 4);
    const sorted = [...x].map(Math.abs).sort((a, b) => b - a);
    for (const k of [1, 2, 17, 1000, 2001]) expect(kthLargestAbs(x, k)).toBe(sorted[k - 1]);
  });

  it('rejects malformed payloads with the reason and what is wrong', () => {
    const n = 100;
    const out = new Float32Array(n);
    const reason = (fn: () => void): string => {
      try {
        fn();
      } catch (e) {
        return `${(e as { reason: string }).reason}: ${(e as Error).message}`;
      }
      return 'accepted';
    };
    expect(reason(() => createDecoder('gzip-delta', 10, out))).toMatch(/^bad_encoding: encoding: unknown "gzip-delta"/);
    expect(reason(() => createDecoder('int8-delta', 99, out))).toMatch(/^size_mismatch: total_bytes: expected 104/);
    expect(reason(() => createDecoder('topk-delta', 4 + 8 * 51, out))).toMatch(/^size_mismatch/); // n = 100: at most 50
    expect(reason(() => createDecoder('float32-delta', 399, out))).toMatch(/^size_mismatch/);

    const nanScale = encodeUpdate(randn(n, 5), { codec: 'int8' });
    new DataView(nanScale.buffer).setFloat32(0, NaN, true);
    expect(reason(() => createDecoder('int8-delta', nanScale.byteLength, out)!.write(nanScale))).toMatch(/^non_finite: int8-delta: block 0 has scale NaN/);

    const topk = encodeUpdate(randn(n, 6), { codec: 'topk', topkFraction: 0.1 });
    const dv = new DataView(topk.buffer);
    const swapped = topk.slice();
    new DataView(swapped.buffer).setUint32(4 + 8, dv.getUint32(4, true), true); // record 1 repeats record 0's index
    expect(reason(() => createDecoder('topk-delta', swapped.byteLength, out)!.write(swapped))).toMatch(/^bad_index: topk-delta: record 1/);
    const outOfRange = topk.slice();
    new DataView(outOfRange.buffer).setUint32(4 + 8 * 9, 100, true);
    expect(reason(() => createDecoder('topk-delta', outOfRange.byteLength, out)!.write(outOfRange))).toMatch(/^bad_index/);
    const nanValue = topk.slice();
    new DataView(nanValue.buffer).setFloat32(4 + 4, Infinity, true);
    expect(reason(() => createDecoder('topk-delta', nanValue.byteLength, out)!.write(nanValue))).toMatch(/^non_finite/);
    const badCount = topk.slice();
    new DataView(badCount.buffer).setUint32(0, 9, true);
    expect(reason(() => createDecoder('topk-delta', badCount.byteLength, out)!.write(badCount))).toMatch(/^size_mismatch: topk-delta: count 9/);

    const truncated = createDecoder('topk-delta', topk.byteLength, out)!;
    truncated.write(topk.subarray(0, topk.length - 3));
    expect(reason(() => truncated.end())).toMatch(/^truncated: topk-delta: payload ended after 9 of 10 records/);
    const int8 = encodeUpdate(randn(n, 7), { codec: 'int8' });
    const short = createDecoder('int8-delta', int8.byteLength, out)!;
    short.write(int8.subarray(0, 50));
    expect(reason(() => short.end())).toMatch(/^truncated/);
  });

  it('error feedback: what top-k drops is sent later, so the sums agree up to the carried residual', () => {
    const n = 4000;
    const spec: CodecSpec = { codec: 'topk', topkFraction: 0.01 };
    const ef = new ErrorFeedback();
    const meantSum = new Float64Array(n);
    const sentSum = new Float64Array(n);
    for (let round = 0; round < 30; round++) {
      const delta = randn(n, 100 + round, 0.01);
      delta.forEach((v, i) => (meantSum[i]! += v));
      ef.apply(delta);
      const bytes = encodeUpdate(delta, spec);
      ef.update(delta, bytes, ENCODING_OF.topk);
      decode(spec, bytes, n).forEach((v, i) => (sentSum[i]! += v));
    }
    // meant = sent + residual, exactly (up to float32 rounding of the running residual).
    let diff = 0;
    let res = 0;
    for (let i = 0; i < n; i++) diff += (meantSum[i]! - sentSum[i]!) ** 2;
    res = ef.norm();
    expect(Math.abs(Math.sqrt(diff) - res)).toBeLessThan(1e-4 * Math.max(1, res));
    expect(res).toBeGreaterThan(0);
  });
});
