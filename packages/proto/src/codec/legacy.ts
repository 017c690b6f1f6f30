/**
 * Update codecs both ends agree on: how an agent packs its float32 model delta for the wire (float32, int8 blocks, or
 * top-k sparse) and how the coordinator unpacks it, chunk by chunk, straight into its staging memory.
 *
 * Wire layouts (little-endian):
 * - `float32-delta`: n float32.
 * - `int8-delta`: ceil(n / 1024) blocks of [float32 scale][int8 q x m] (m = 1024, the last block shorter); value = q * scale.
 *   Symmetric, per block, so one outlier only coarsens its own 1,024 values. 0.254x the float32 size.
 * - `topk-delta`: [uint32 count] then count x [uint32 index][float32 value], indices strictly increasing; the rest are 0.
 *   Records are interleaved (not two arrays) so the receiver can scatter each chunk as it arrives.
 * Decoders never buffer more than one block or record across chunk boundaries: memory stays O(model), not O(payload).
 */
import { RejectedUpdateError } from '../errors.js';
import type { UpdateDecoder } from './bytes.js';
import { PIPE_PREFIX, PipelineDecoder, checkPipelineSize, pipelineOfEncoding } from './pipeline.js';
import { kthLargestAbs, topkCount } from './sparse.js';

export const CODECS = ['float32', 'int8', 'topk'] as const;
export type CodecName = (typeof CODECS)[number];

export const ENCODING_OF: Record<CodecName, string> = { float32: 'float32-delta', int8: 'int8-delta', topk: 'topk-delta' };

/** Values per int8 block: one float32 scale per 1,024 int8 values (0.4% overhead). */
export const INT8_BLOCK = 1024;
/** Top-k sends 8 bytes per kept value: above half the values it would be larger than float32. */
export const TOPK_MAX_FRACTION = 0.5;

export interface CodecSpec {
  codec: CodecName;
  /** topk: fraction of values kept, in (0, 0.5]. */
  topkFraction?: number;
}

export function codecOfEncoding(encoding: string): CodecName | undefined {
  return CODECS.find((c) => ENCODING_OF[c] === encoding);
}

/** Exact payload size for float32 and int8; the largest allowed size for top-k (it may send fewer ties-free values). */
export function maxEncodedBytes(spec: CodecSpec, n: number): number {
  switch (spec.codec) {
    case 'float32':
      return 4 * n;
    case 'int8':
      return n + 4 * Math.ceil(n / INT8_BLOCK);
    case 'topk':
      return 4 + 8 * topkCount(n, spec.topkFraction ?? 0.1);
  }
}

// ---------------------------------------------------------------------------------------------------------- encode

/**
 * Encodes `delta`. With `maxNorm`, the decoded int8 update is guaranteed to have L2 norm <= maxNorm (rounding to the
 * nearest step can lengthen a clipped vector slightly; DP's sensitivity bound must hold on what is sent). Top-k only
 * drops values, so it never lengthens a vector.
 */
export function encodeUpdate(delta: Float32Array, spec: CodecSpec, maxNorm?: number): Uint8Array {
  switch (spec.codec) {
    case 'float32':
      return new Uint8Array(delta.buffer, delta.byteOffset, delta.byteLength);
    case 'int8':
      return encodeInt8(delta, maxNorm);
    case 'topk':
      return encodeTopk(delta, topkCount(delta.length, spec.topkFraction ?? 0.1));
  }
}

function encodeInt8(x: Float32Array, maxNorm?: number): Uint8Array {
  const n = x.length;
  const blocks = Math.ceil(n / INT8_BLOCK);
  const out = new Uint8Array(n + 4 * blocks);
  const dv = new DataView(out.buffer);
  const q = new Int8Array(out.buffer);
  let sumSq = 0;
  for (let b = 0, pos = 0; b < blocks; b++) {
    const start = b * INT8_BLOCK;
    const end = Math.min(n, start + INT8_BLOCK);
    let maxAbs = 0;
    for (let i = start; i < end; i++) maxAbs = Math.max(maxAbs, Math.abs(x[i]!));
    const scale = Math.fround(maxAbs / 127);
    dv.setFloat32(pos, scale, true);
    pos += 4;
    const inv = scale > 0 ? 1 / scale : 0;
    let blockSq = 0;
    for (let i = start; i < end; i++, pos++) {
      const v = Math.max(-127, Math.min(127, Math.round(x[i]! * inv)));
      q[pos] = v;
      blockSq += v * v;
    }
    sumSq += blockSq * scale * scale;
  }
  const norm = Math.sqrt(sumSq);
  if (maxNorm !== undefined && maxNorm > 0 && norm > maxNorm) {
    // Shrink every scale by the same factor (a hair more, for float32 rounding of the scales).
    const f = (maxNorm / norm) * (1 - 1e-6);
    for (let b = 0, pos = 0; b < blocks; b++) {
      dv.setFloat32(pos, dv.getFloat32(pos, true) * f, true);
      pos += 4 + Math.min(INT8_BLOCK, n - b * INT8_BLOCK);
    }
  }
  return out;
}

function encodeTopk(x: Float32Array, k: number): Uint8Array {
  const n = x.length;
  const threshold = kthLargestAbs(x, k);
  // Everything strictly above the threshold, then values equal to it (in index order) until k are kept.
  let above = 0;
  for (let i = 0; i < n; i++) if (Math.abs(x[i]!) > threshold) above++;
  let ties = k - above;
  const out = new Uint8Array(4 + 8 * k);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, k, true);
  let pos = 4;
  for (let i = 0; i < n && pos < out.length; i++) {
    const a = Math.abs(x[i]!);
    if (a > threshold || (a === threshold && ties-- > 0)) {
      dv.setUint32(pos, i, true);
      dv.setFloat32(pos + 4, x[i]!, true);
      pos += 8;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------- decode

/**
 * A decoder for `encoding` writing into `out` (the n = out.length float32 params), after checking that `totalBytes`
 * is a size this codec can have for n params. float32 returns undefined: the caller copies bytes directly.
 */
export function createDecoder(encoding: string, totalBytes: number, out: Float32Array): UpdateDecoder | undefined {
  if (encoding.startsWith(PIPE_PREFIX)) return new PipelineDecoder(pipelineOfEncoding(encoding)!, totalBytes, out);
  const codec = checkEncodedSize(encoding, totalBytes, out.length) as CodecName;
  if (codec === 'float32') return undefined;
  if (codec === 'int8') return new Int8Decoder(out);
  return new TopkDecoder(out, (totalBytes - 4) / 8);
}

/** Checks that `encoding` is known and `totalBytes` a size it can have for n params; returns the codec. */
export function checkEncodedSize(encoding: string, totalBytes: number, n: number): string {
  if (encoding.startsWith(PIPE_PREFIX)) {
    const p = pipelineOfEncoding(encoding)!;
    checkPipelineSize(p, totalBytes, n);
    return p.spec;
  }
  const codec = codecOfEncoding(encoding);
  if (!codec) throw new RejectedUpdateError('bad_encoding', `encoding: unknown "${encoding}"; expected one of ${CODECS.map((c) => ENCODING_OF[c]).join(', ')} or ${PIPE_PREFIX}SPEC`);
  if (codec === 'topk') {
    // Counted exactly as the encoder counts (ceil), so the largest fraction allowed is also accepted for odd n.
    const maxCount = topkCount(n, TOPK_MAX_FRACTION);
    if (totalBytes < 4 || (totalBytes - 4) % 8 !== 0 || totalBytes > 4 + 8 * maxCount)
      throw new RejectedUpdateError('size_mismatch', `total_bytes: a topk-delta of ${n} params is 4 + 8 x count bytes with count <= ${maxCount}, got ${totalBytes}`);
    return codec;
  }
  const expected = maxEncodedBytes({ codec }, n);
  if (totalBytes !== expected) throw new RejectedUpdateError('size_mismatch', `total_bytes: expected ${expected} for ${encoding} of ${n} params, got ${totalBytes}`);
  return codec;
}

/** Carries the bytes of a record split across chunks. */
class Carry {
  readonly buf: Uint8Array;
  len = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
}

class Int8Decoder implements UpdateDecoder {
  private i = 0; // next param
  private scale = 0;
  private left = 0; // int8 values left in the current block
  private readonly head = new Carry(4);
  private readonly scaleView = new DataView(this.head.buf.buffer);

  constructor(private readonly out: Float32Array) {}

  write(data: Uint8Array): void {
    const out = this.out;
    let p = 0;
    while (p < data.length) {
      if (this.left === 0) {
        if (this.i >= out.length) throw new RejectedUpdateError('oversized', 'int8-delta: more bytes than the model has params');
        while (this.head.len < 4 && p < data.length) this.head.buf[this.head.len++] = data[p++]!;
        if (this.head.len < 4) return;
        this.head.len = 0;
        const s = this.scaleView.getFloat32(0, true);
        if (!Number.isFinite(s) || s < 0)
          throw new RejectedUpdateError('non_finite', `int8-delta: block ${Math.floor(this.i / INT8_BLOCK)} has scale ${s}; scales must be finite and >= 0`);
        this.scale = s;
        this.left = Math.min(INT8_BLOCK, out.length - this.i);
        continue;
      }
      const m = Math.min(this.left, data.length - p);
      const q = new Int8Array(data.buffer, data.byteOffset + p, m);
      const s = this.scale;
      const base = this.i;
      for (let j = 0; j < m; j++) out[base + j] = q[j]! * s;
      this.i += m;
      this.left -= m;
      p += m;
    }
  }

  end(): void {
    if (this.i !== this.out.length || this.left !== 0 || this.head.len !== 0)
      throw new RejectedUpdateError('truncated', `int8-delta: payload ended after ${this.i} of ${this.out.length} params`);
  }
}

class TopkDecoder implements UpdateDecoder {
  private count = -1; // from the payload's first 4 bytes
  private seen = 0;
  private last = -1;
  private readonly rec = new Carry(8);
  private readonly recView = new DataView(this.rec.buf.buffer);

  constructor(private readonly out: Float32Array, private readonly declared: number) {
    // Values top-k did not send are zero; the staging memory holds the previous upload's bytes.
    out.fill(0);
  }

  write(data: Uint8Array): void {
    let p = 0;
    while (p < data.length) {
      const need = this.count < 0 ? 4 : 8;
      if (this.rec.len === 0 && data.length - p >= need) {
        // Fast path: the whole field or record is inside this chunk.
        this.take(new DataView(data.buffer, data.byteOffset + p, need));
        p += need;
        continue;
      }
      while (this.rec.len < need && p < data.length) this.rec.buf[this.rec.len++] = data[p++]!;
      if (this.rec.len < need) return;
      this.rec.len = 0;
      this.take(this.recView);
    }
  }

  private take(v: DataView): void {
    if (this.count < 0) {
      this.count = v.getUint32(0, true);
      if (this.count !== this.declared)
        throw new RejectedUpdateError('size_mismatch', `topk-delta: count ${this.count} does not match total_bytes (${this.declared} records)`);
      return;
    }
    if (this.seen >= this.count) throw new RejectedUpdateError('oversized', `topk-delta: more than the ${this.count} records declared`);
    const index = v.getUint32(0, true);
    const value = v.getFloat32(4, true);
    if (index <= this.last || index >= this.out.length)
      throw new RejectedUpdateError('bad_index', `topk-delta: record ${this.seen} has index ${index}; indices must be strictly increasing and < ${this.out.length}`);
    if (!Number.isFinite(value)) throw new RejectedUpdateError('non_finite', `topk-delta: value at index ${index} is ${value}`);
    this.out[index] = value;
    this.last = index;
    this.seen++;
  }

  end(): void {
    if (this.count < 0 || this.seen !== this.count || this.rec.len !== 0)
      throw new RejectedUpdateError('truncated', `topk-delta: payload ended after ${this.seen} of ${Math.max(this.count, 0)} records`);
  }
}
