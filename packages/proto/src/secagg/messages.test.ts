/** Stage messages as JSON: bytes become base64 (from a Uint8Array or a Buffer) and the schemas read them back. */
import { describe, expect, it } from 'vitest';
import { secaggAdvertiseSchema, secaggToJson, secaggUnmaskSchema } from './messages.js';
import { maskedFromBytes, maskedToBytes } from './wire.js';

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
    expect(() => maskedFromBytes(new Uint8Array(7), 16, 4)).toThrow(/7 bytes, need 4 values x 2 bytes = 8/);
  });
});
