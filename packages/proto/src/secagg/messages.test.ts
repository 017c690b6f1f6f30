/** Stage messages as JSON: bytes become base64 (from a Uint8Array or a Buffer) and the schemas read them back. */
import { describe, expect, it } from 'vitest';
import { secaggAdvertiseSchema, secaggToJson, secaggUnmaskSchema } from './messages.js';
import { maskedByteLength, maskedFromBytes, maskedToBytes } from './wire.js';

describe('secagg messages', () => {
  it('round trip through JSON with Uint8Array or Buffer fields, and check lengths', () => {
    const cPk = new Uint8Array(32).fill(7);
    const sPk = Buffer.alloc(32, 9);
    const back = secaggAdvertiseSchema.parse(JSON.parse(secaggToJson({ cPk, sPk })));
    expect(Array.from(back.cPk)).toEqual(Array.from(cPk));
    expect(Array.from(back.sPk)).toEqual(Array.from(sPk));
    expect(secaggAdvertiseSchema.safeParse({ cPk: 'AAAA', sPk: Buffer.alloc(32).toString('base64') }).success).toBe(false);
    expect(secaggUnmaskSchema.safeParse({ bShares: [{ owner: 'a', share: 'not base64!' }], sShares: [] }).success).toBe(false);
    expect(() => secaggToJson({ y: new Uint32Array(2) })).toThrow(/maskedToBytes/);
  });

  it('masked vectors pack to 1, 2 or 4 bytes a value and refuse a wrong size', () => {
    const y = Uint32Array.of(0, 1, 255, 200);
    for (const bits of [8, 16, 32]) {
      const b = maskedToBytes(y, bits);
      expect(b.length).toBe(4 * (bits / 8));
      // an unaligned view, as a network Buffer may be
      const shifted = new Uint8Array(b.length + 1);
      shifted.set(b, 1);
      expect(Array.from(maskedFromBytes(shifted.subarray(1), bits, 4))).toEqual(Array.from(y));
    }
    // The message names the bit width now that rings of any width pack tightly (it said "x 2 bytes" before).
    expect(() => maskedFromBytes(new Uint8Array(7), 16, 4)).toThrow(/7 bytes, need 4 values x 16 bits = 8 bytes/);
  });

  it('rings of any width pack tightly (ceil(count x bits / 8) bytes) and round-trip their largest values', () => {
    for (let bits = 1; bits <= 32; bits++) {
      const top = 2 ** bits - 1;
      for (const count of [1, 7, 8, 1001]) {
        const y = Uint32Array.from({ length: count }, (_, i) => (i % 3 === 0 ? top : i % 3 === 1 ? 0 : Math.floor((top * ((i * 7919) % 1000)) / 999)));
        const b = maskedToBytes(y, bits);
        expect(b.length).toBe(maskedByteLength(bits, count));
        expect(b.length).toBe(Math.ceil((count * bits) / 8));
        expect(Array.from(maskedFromBytes(b, bits, count))).toEqual(Array.from(y));
      }
    }
    expect(maskedToBytes(new Uint32Array(10), 12)).toHaveLength(15);
    expect(() => maskedFromBytes(new Uint8Array(14), 12, 10)).toThrow(/14 bytes, need 10 values x 12 bits = 15 bytes/);
  });
});
