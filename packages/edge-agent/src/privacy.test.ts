import { describe, expect, it } from 'vitest';
import { ErrorFeedback, GaussianSampler, createDecoder, l2Norm, seededUniform } from '@fedge/proto';
import { packUpdate, privatizeUpdate } from './privacy.js';

const base = { epochs: 1, batchSize: 32, learningRate: 0.1, seed: 1 };

function decoded(p: { payload: Uint8Array; encoding: string }, n: number): Float32Array {
  const out = new Float32Array(n);
  const dec = createDecoder(p.encoding, p.payload.byteLength, out);
  if (!dec) return new Float32Array(p.payload.buffer.slice(p.payload.byteOffset, p.payload.byteOffset + p.payload.byteLength));
  dec.write(p.payload);
  dec.end();
  return out;
}

function ramp(n: number): Float32Array {
  return new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 11)));
}

describe('privatizeUpdate', () => {
  it('does nothing without DP settings', () => {
    const d = new Float32Array([3, 4]);
    expect(privatizeUpdate(d, {})).toEqual({});
    expect(privatizeUpdate(d, { clipNorm: 0, noiseStd: 0, reportClipped: false })).toEqual({});
    expect([...d]).toEqual([3, 4]);
  });

  it('clips to the norm and reports dp_clipped only when asked', () => {
    const d = new Float32Array([30, 40]);
    expect(privatizeUpdate(d, { clipNorm: 5 })).toEqual({});
    expect(l2Norm(d)).toBeLessThanOrEqual(5);
    expect(privatizeUpdate(new Float32Array([30, 40]), { clipNorm: 5, reportClipped: true })).toEqual({ dp_clipped: 1 });
    expect(privatizeUpdate(new Float32Array([0.3, 0.4]), { clipNorm: 5, reportClipped: true })).toEqual({ dp_clipped: 0 });
  });

  it('local DP: clips first, then adds noise of std noiseStd (empirical std within 1%)', () => {
    const n = 500_000;
    const d = new Float32Array(n).fill(1); // norm sqrt(n), clipped to S = 2
    const S = 2;
    const std = 1.5 * S;
    privatizeUpdate(d, { clipNorm: S, noiseStd: std }, new GaussianSampler(seededUniform(3)));
    const clippedValue = (S / Math.sqrt(n)) * (1 - 1e-6);
    let s2 = 0;
    for (const x of d) s2 += (x - clippedValue) ** 2;
    expect(Math.abs(Math.sqrt(s2 / n) / std - 1)).toBeLessThan(0.01);
  });
});

describe('packUpdate: error feedback, then clip, then compress', () => {
  it('what is sent never exceeds the clip norm, for every codec, residual included', () => {
    const n = 5000;
    const S = 0.7;
    for (const codec of ['float32', 'int8', 'topk', 'fp16', 'q8', 'q4', 'q2', 'topk:0.05+q8', 'topk:0.01+q2', 'topk:0.2+fp16']) {
      const ef = new ErrorFeedback({ momentum: codec.includes('q2') ? 0.9 : 0 });
      for (let round = 0; round < 3; round++) {
        const p = packUpdate(ramp(n), { ...base, clipNorm: S, codec, topkFraction: 0.05, errorFeedback: true }, ef);
        expect(l2Norm(decoded(p, n)), `${codec} round ${round}`).toBeLessThanOrEqual(S);
        p.onAccepted?.();
      }
      if (codec !== 'float32') expect(ef.norm(), codec).toBeGreaterThan(0);
    }
  });

  it('the residual is added before clipping, and kept only when the upload is accepted', () => {
    const n = 1000;
    const ef = new ErrorFeedback();
    const cfg = { ...base, codec: 'topk', topkFraction: 0.01, errorFeedback: true };
    const first = packUpdate(ramp(n), cfg, ef);
    expect(first.encoding).toBe('topk-delta');
    expect(first.metrics.compression_ratio).toBeCloseTo((4 + 8 * 10) / 4000, 6);
    // Not accepted: nothing carried.
    expect(ef.norm()).toBe(0);
    first.onAccepted!();
    const carried = ef.norm();
    expect(carried).toBeGreaterThan(0);
    // A zero delta now sends (part of) what was dropped last time.
    const second = packUpdate(new Float32Array(n), cfg, ef);
    expect(l2Norm(decoded(second, n))).toBeGreaterThan(0);
    second.onAccepted!();
    expect(ef.norm()).toBeLessThan(carried);
  });

  it('without errorFeedback no residual is kept; an unknown codec fails the task with a clear message', () => {
    const ef = new ErrorFeedback();
    const p = packUpdate(ramp(100), { ...base, codec: 'int8', errorFeedback: false }, ef);
    expect(p.onAccepted).toBeUndefined();
    expect(p.payload.byteLength).toBe(100 + 4);
    expect(() => packUpdate(ramp(100), { ...base, codec: 'zstd' })).toThrow(/task config codec: unknown "zstd"/);
    expect(() => packUpdate(ramp(100), { ...base, codec: 'topk:0.1+q3' })).toThrow(/task config codec: unknown "topk:0.1\+q3".*unknown stage "q3"/);
    const q = packUpdate(ramp(5000), { ...base, codec: 'topk:0.001+q8', errorFeedback: true }, ef);
    expect(q.encoding).toBe('pipe:topk:0.001+q8');
    expect(q.metrics.compression_ratio).toBe(q.payload.byteLength / 20000); // 5 values: 9 header + ~10 index + 9 value bytes
    expect(q.metrics.compression_ratio).toBeLessThan(0.002);
  });
});
