/** X25519 agreement for pairwise masks and share boxes: tweetnacl's keys and box format, OpenSSL's scalar multiply. */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

// RFC 8410 DER headers for a raw 32-byte X25519 private key (PKCS#8) and public key (SPKI).
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

/** A private key ready for node:crypto's X25519 (import once, agree many times). */
export function x25519Private(sk: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, sk]), format: 'der', type: 'pkcs8' });
}

function x25519Public(pk: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, pk]), format: 'der', type: 'spki' });
}

/**
 * The raw X25519 shared point, equal to nacl.scalarMult(sk, pk) (both clamp as RFC 7748; a test checks it).
 * node:crypto's is several times faster than tweetnacl's JavaScript one (bench/results/secagg-prg.json), and the
 * coordinator runs one per (dropped agent, surviving neighbor) pair.
 */
export function x25519(sk: KeyObject, pk: Uint8Array): Uint8Array {
  return new Uint8Array(diffieHellman({ privateKey: sk, publicKey: x25519Public(pk) }));
}

/** The public key of a raw private key (the coordinator checks a rebuilt s-key against the advertised one). */
export function x25519PublicOf(sk: Uint8Array): Uint8Array {
  const jwk = createPublicKey(x25519Private(sk)).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
}

/** Seed of the pairwise mask between two agents: a hash of their shared point, domain-separated. */
export function maskSeed(sk: KeyObject, pk: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update('fedge-secagg-pairwise-mask').update(x25519(sk, pk)).digest());
}

interface NaclLowlevel {
  crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
}
const SIGMA = new Uint8Array(Buffer.from('expand 32-byte k', 'latin1'));
const ZERO16 = new Uint8Array(16);

/**
 * nacl.box.before(pk, sk) with the scalar multiply done by node:crypto: HSalsa20 of the shared point, exactly as
 * tweetnacl's crypto_box_beforenm. The result is used with nacl.box.after / nacl.box.open.after.
 */
export function boxKey(sk: KeyObject, pk: Uint8Array): Uint8Array {
  const k = new Uint8Array(32);
  (nacl as unknown as { lowlevel: NaclLowlevel }).lowlevel.crypto_core_hsalsa20(k, ZERO16, x25519(sk, pk), SIGMA);
  return k;
}

/** The plaintext inside one share box: who shares with whom, and the two shares (b and s-key). */
export interface SharePlaintext {
  owner: string;
  holder: string;
  b: Uint8Array;
  s: Uint8Array;
}

/** Binary: u16 owner length, owner (utf8), u16 holder length, holder, u8 share length, b, s. */
export function encodeSharePlaintext(p: SharePlaintext): Uint8Array {
  const o = Buffer.from(p.owner, 'utf8');
  const h = Buffer.from(p.holder, 'utf8');
  const out = Buffer.alloc(2 + o.length + 2 + h.length + 1 + p.b.length + p.s.length);
  let i = out.writeUInt16BE(o.length, 0);
  i += o.copy(out, i);
  i = out.writeUInt16BE(h.length, i);
  i += h.copy(out, i);
  i = out.writeUInt8(p.b.length, i);
  out.set(p.b, i);
  out.set(p.s, i + p.b.length);
  return new Uint8Array(out);
}

/** Parses a share plaintext; undefined when it is not one (the MAC passed, so only a buggy sender gets here). */
export function decodeSharePlaintext(bytes: Uint8Array): SharePlaintext | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    let i = 0;
    const ol = buf.readUInt16BE(i);
    const owner = buf.toString('utf8', i + 2, i + 2 + ol);
    i += 2 + ol;
    const hl = buf.readUInt16BE(i);
    const holder = buf.toString('utf8', i + 2, i + 2 + hl);
    i += 2 + hl;
    const sl = buf.readUInt8(i);
    i += 1;
    if (buf.length !== i + 2 * sl) return undefined;
    return { owner, holder, b: new Uint8Array(buf.subarray(i, i + sl)), s: new Uint8Array(buf.subarray(i + sl)) };
  } catch {
    return undefined;
  }
}
