/** A masked vector as bytes: little-endian ring elements, 1, 2 or 4 bytes each by the ring's bits. */
import { ValidationError } from '../errors.js';

/** Bytes per element: rings of at most 8 or 16 bits pack into 1 or 2 bytes (int8-style smaller rings cost less). */
export function maskedByteWidth(bits: number): 1 | 2 | 4 {
  return bits <= 8 ? 1 : bits <= 16 ? 2 : 4;
}

/** Encodes y (values < 2^bits) for the wire. */
export function maskedToBytes(y: Uint32Array, bits: number): Uint8Array {
  const w = maskedByteWidth(bits);
  if (w === 4) return new Uint8Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength));
  const out = w === 2 ? new Uint16Array(y.length) : new Uint8Array(y.length);
  out.set(y);
  return new Uint8Array(out.buffer);
}

/** Decodes bytes from the wire into a masked vector of `length` elements; wrong sizes are a ValidationError. */
export function maskedFromBytes(bytes: Uint8Array, bits: number, length: number): Uint32Array {
  const w = maskedByteWidth(bits);
  if (bytes.length !== length * w) throw new ValidationError(`secagg masked input: ${bytes.length} bytes, need ${length} values x ${w} bytes = ${length * w}`);
  // Copy into an aligned buffer: a Buffer from the network may start at any offset.
  const copy = new Uint8Array(bytes).buffer;
  if (w === 4) return new Uint32Array(copy);
  return Uint32Array.from(w === 2 ? new Uint16Array(copy) : new Uint8Array(copy));
}
