/** A masked vector as bytes: ring elements packed at exactly `bits` bits each, little-endian (32 and 16 bits are plain arrays). */
import { ValidationError } from '../errors.js';

/**
 * Bytes of `count` elements of Z_{2^bits}: ceil(count * bits / 8). Tight packing is what makes a small ring pay: a
 * 12-bit ring (int8 mode, 10 agents) costs 1.5 bytes a value, 0.375x float32, where padding to 16 bits would be 0.5x.
 */
export function maskedByteLength(bits: number, count: number): number {
  return Math.ceil((count * bits) / 8);
}

/** Encodes y (values < 2^bits) for the wire. */
export function maskedToBytes(y: Uint32Array, bits: number): Uint8Array {
  if (bits === 32) return new Uint8Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength));
  if (bits === 16) return new Uint8Array(Uint16Array.from(y).buffer);
  if (bits === 8) return Uint8Array.from(y);
  const out = new Uint8Array(maskedByteLength(bits, y.length));
  // A little-endian bit stream: acc holds fewer than 8 pending bits plus one value (< 2^39, exact in a double);
  // `& 255` reads its low byte through ToInt32, which keeps the low 32 bits.
  let acc = 0;
  let nb = 0;
  let o = 0;
  for (let i = 0; i < y.length; i++) {
    acc += y[i]! * 2 ** nb;
    nb += bits;
    while (nb >= 8) {
      const b = acc & 255;
      out[o++] = b;
      acc = (acc - b) / 256;
      nb -= 8;
    }
  }
  if (nb > 0) out[o] = acc;
  return out;
}

/** Decodes bytes from the wire into a masked vector of `length` elements; wrong sizes are a ValidationError. */
export function maskedFromBytes(bytes: Uint8Array, bits: number, length: number): Uint32Array {
  const want = maskedByteLength(bits, length);
  if (bytes.length !== want) throw new ValidationError(`secagg masked input: ${bytes.length} bytes, need ${length} values x ${bits} bits = ${want} bytes`);
  if (bits === 32 || bits === 16) {
    // Copy into an aligned buffer: a Buffer from the network may start at any offset.
    const copy = new Uint8Array(bytes).buffer;
    return bits === 32 ? new Uint32Array(copy) : Uint32Array.from(new Uint16Array(copy));
  }
  if (bits === 8) return Uint32Array.from(bytes);
  const out = new Uint32Array(length);
  const top = 2 ** bits;
  let acc = 0;
  let nb = 0;
  let p = 0;
  for (let i = 0; i < length; i++) {
    while (nb < bits) {
      acc += bytes[p++]! * 2 ** nb;
      nb += 8;
    }
    const v = acc % top;
    out[i] = v;
    acc = (acc - v) / top;
    nb -= bits;
  }
  return out;
}
