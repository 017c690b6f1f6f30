/** node:crypto's X25519 agrees with tweetnacl's, so tweetnacl keys and boxes work with the faster scalar multiply. */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { boxKey, decodeSharePlaintext, encodeSharePlaintext, maskSeed, x25519, x25519Private, x25519PublicOf } from './keys.js';

describe('secagg keys', () => {
  it('x25519 equals nacl.scalarMult, boxKey equals nacl.box.before, x25519PublicOf equals the keyPair public key', () => {
    for (let i = 0; i < 5; i++) {
      const a = nacl.box.keyPair();
      const b = nacl.box.keyPair();
      expect(Buffer.from(x25519(x25519Private(a.secretKey), b.publicKey))).toEqual(Buffer.from(nacl.scalarMult(a.secretKey, b.publicKey)));
      expect(Buffer.from(boxKey(x25519Private(a.secretKey), b.publicKey))).toEqual(Buffer.from(nacl.box.before(b.publicKey, a.secretKey)));
      expect(Buffer.from(x25519PublicOf(a.secretKey))).toEqual(Buffer.from(a.publicKey));
    }
  });

  it('both ends of a pair derive the same mask seed; other pairs do not', () => {
    const [a, b, c] = [nacl.box.keyPair(), nacl.box.keyPair(), nacl.box.keyPair()];
    const ab = maskSeed(x25519Private(a.secretKey), b.publicKey);
    expect(Buffer.from(maskSeed(x25519Private(b.secretKey), a.publicKey))).toEqual(Buffer.from(ab));
    expect(Buffer.from(maskSeed(x25519Private(a.secretKey), c.publicKey))).not.toEqual(Buffer.from(ab));
  });

  it('share plaintexts round trip and malformed ones are refused', () => {
    const p = { owner: 'agent-é', holder: 'h', b: new Uint8Array(33).fill(1), s: new Uint8Array(33).fill(2) };
    expect(decodeSharePlaintext(encodeSharePlaintext(p))).toEqual(p);
    const enc = encodeSharePlaintext(p);
    expect(decodeSharePlaintext(enc.subarray(0, enc.length - 1))).toBeUndefined();
    expect(decodeSharePlaintext(new Uint8Array([0xff]))).toBeUndefined();
  });
});
