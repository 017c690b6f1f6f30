/**
 * Value codecs: how a run of float32 values (the whole update, or the values top-k kept) is written. One entry per
 * codec in VALUE_CODECS; adding a codec is a file exporting a ValueCodec and a line here.
 */
import { RejectedUpdateError } from '../errors.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { fromHalf, toHalf } from './half.js';
import { QuantCodec } from './quantize.js';

export interface EncodeOptions {
  /** The decoded values' L2 norm must not exceed this (DP clip bound; rounding must not lengthen a clipped vector). */
  maxNorm?: number;
  /** Uniform [0, 1) source for stochastic rounding. */
  rng: () => number;
}

export interface ValueCodec {
  readonly name: string;
  /** One-line description for help texts. */
  readonly about: string;
  /** Exact encoded size of m values. */
  bytes(m: number): number;
  encode(v: Float32Array, w: ByteWriter, o: EncodeOptions): void;
  /** Decodes out.length values; throws RejectedUpdateError on a malformed section. Non-finite values are checked by the caller. */
  decode(r: ByteReader, out: Float32Array): void;
}

const float32: ValueCodec = {
  name: 'float32',
  about: 'float32 values (4 bytes each)',
  bytes: (m) => 4 * m,
  encode(v, w) {
    w.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  },
  decode(r, out) {
    const b = r.take(4 * out.length, 'float32 values');
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(b);
  },
};

const fp16: ValueCodec = {
  name: 'fp16',
  about: 'IEEE half precision (2 bytes each; toward zero under a clip bound so it never lengthens the vector)',
  bytes: (m) => 2 * m,
  encode(v, w, o) {
    const b = w.reserve(2 * v.length);
    const towardZero = o.maxNorm !== undefined;
    for (let i = 0; i < v.length; i++) {
      const h = toHalf(v[i]!, towardZero);
      b[2 * i] = h & 0xff;
      b[2 * i + 1] = h >>> 8;
    }
  },
  decode(r, out) {
    const b = r.take(2 * out.length, 'fp16 values');
    for (let i = 0; i < out.length; i++) out[i] = fromHalf(b[2 * i]! | (b[2 * i + 1]! << 8));
  },
};

/** Every value codec by name; `none` is accepted as float32 by the spec parser. */
export const VALUE_CODECS: Record<string, ValueCodec> = {
  float32,
  fp16,
  int8: new QuantCodec('int8', 8, false),
  q8: new QuantCodec('q8', 8, true),
  q4: new QuantCodec('q4', 4, true),
  q2: new QuantCodec('q2', 2, true),
};

export function valueCodec(name: string): ValueCodec {
  const c = VALUE_CODECS[name];
  if (!c) throw new RejectedUpdateError('bad_encoding', `unknown value codec "${name}"; known: ${Object.keys(VALUE_CODECS).join(', ')}`);
  return c;
}

export { ByteReader, ByteWriter };
