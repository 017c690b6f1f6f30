/** IEEE 754 binary16 conversion (Node 20 has no Float16Array): round to nearest even, or toward zero when asked. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> binary16 bits. `towardZero` never increases |x| (what a clip bound needs). */
export function toHalf(x: number, towardZero = false): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return towardZero ? sign | 0x7bff : sign | 0x7c00; // overflow
  let shift: number;
  if (e <= 0) {
    // Subnormal half: the implicit 1 becomes explicit.
    if (e < -10) return sign;
    mant |= 0x800000;
    shift = 14 - e;
    e = 0;
  } else shift = 13;
  let h = (e << 10) | (mant >>> shift);
  if (!towardZero) {
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // Carry into the exponent is the right result (it rounds up to the next binade or to Inf).
    if (rem > half || (rem === half && (h & 1))) h++;
  }
  return sign | h;
}

/** binary16 bits -> number. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
