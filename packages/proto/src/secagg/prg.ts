/** The masking PRG: a 32-byte seed expands to uint32 values (mod 2^bits by the caller), identical in every process. */
import { createCipheriv, type Cipher } from 'node:crypto';
import { endianness } from 'node:os';
import nacl from 'tweetnacl';

/**
 * Candidates measured by bench/secagg-prg.mjs (bench/results/secagg-prg.json): OpenSSL's ChaCha20, AES-128-CTR and
 * AES-256-CTR through node:crypto, and tweetnacl's XSalsa20 (nacl.lowlevel.crypto_stream, plain JavaScript, not in
 * its typings), which is about 20x slower than any of them.
 */
export const PRG_ALGORITHMS = ['aes-128-ctr', 'aes-256-ctr', 'chacha20', 'xsalsa20-tweetnacl'] as const;
export type PrgAlgorithm = (typeof PRG_ALGORITHMS)[number];

/**
 * The one used by the protocol (every agent and the coordinator must use the same). On the x86 coordinator, with
 * AES instructions, ChaCha20 and AES-CTR tie (about 2 ms per 6.65 MB mask each); edge CPUs without them
 * (Raspberry Pi 4's Cortex-A72, many phones' cores) run AES in software several times slower, ChaCha20 does not
 * need them, and it takes the whole 32-byte seed as its key. Zero IV: every seed keys exactly one stream.
 */
export const PRG_ALGORITHM: PrgAlgorithm = 'chacha20';

/** Elements per keystream block: 64 KiB of keystream plus the same of the sum stay in L2 while every seed is applied. */
export const PRG_CHUNK = 1 << 14;

// Uint32Array views read the host's byte order; every platform Node supports today is little-endian, and masks must
// match across hosts, so refuse rather than silently disagree.
if (endianness() !== 'LE') throw new Error('fedge secagg: a little-endian host is required (masks are read as LE uint32)');

const ZERO = Buffer.alloc(PRG_CHUNK * 4);
const ZERO_IV = Buffer.alloc(16);

/** A keystream: next(n) returns the next n uint32 values (a view valid until the next call). */
export interface PrgStream {
  next(n: number): Uint32Array;
}

interface NaclLowlevel {
  crypto_stream(c: Uint8Array, cpos: number, d: number, n: Uint8Array, k: Uint8Array): number;
}

function cipherStream(cipher: Cipher): PrgStream {
  return {
    next(n) {
      const out = cipher.update(n === PRG_CHUNK ? ZERO : ZERO.subarray(0, n * 4));
      // Large outputs get their own ArrayBuffer (offset 0); copy in the rare unaligned case.
      if (out.byteOffset % 4 === 0) return new Uint32Array(out.buffer, out.byteOffset, n);
      return new Uint32Array(Uint8Array.from(out).buffer, 0, n);
    },
  };
}

/** Opens a keystream for `seed` (32 bytes; AES-128 takes its first 16). */
export function prgStream(seed: Uint8Array, algorithm: PrgAlgorithm = PRG_ALGORITHM): PrgStream {
  if (seed.length !== 32) throw new RangeError(`prg seed: need 32 bytes, got ${seed.length}`);
  switch (algorithm) {
    case 'aes-128-ctr':
      return cipherStream(createCipheriv('aes-128-ctr', seed.subarray(0, 16), ZERO_IV));
    case 'aes-256-ctr':
      return cipherStream(createCipheriv('aes-256-ctr', seed, ZERO_IV));
    case 'chacha20':
      return cipherStream(createCipheriv('chacha20', seed, ZERO_IV));
    case 'xsalsa20-tweetnacl': {
      // crypto_stream restarts at counter 0 on every call, so expand ahead in one piece per request is wrong: keep
      // one growing position by generating a long stream once and slicing it.
      const low = (nacl as unknown as { lowlevel: NaclLowlevel }).lowlevel;
      let buf = new Uint8Array(0);
      let pos = 0;
      return {
        next(n) {
          const need = pos + n * 4;
          if (need > buf.length) {
            const grown = new Uint8Array(Math.max(need, buf.length * 2, PRG_CHUNK * 4));
            low.crypto_stream(grown, 0, grown.length, new Uint8Array(24), seed);
            buf = grown;
          }
          const v = new Uint32Array(buf.buffer, pos, n);
          pos = need;
          return v;
        },
      };
    }
  }
}

/** Expands `seed` into n values mod 2^bits (a fresh array; the hot paths use applyMasks instead). */
export function prgExpand(seed: Uint8Array, n: number, bits = 32, algorithm: PrgAlgorithm = PRG_ALGORITHM): Uint32Array {
  const out = new Uint32Array(n);
  const s = prgStream(seed, algorithm);
  for (let o = 0; o < n; o += PRG_CHUNK) out.set(s.next(Math.min(PRG_CHUNK, n - o)), o);
  if (bits < 32) {
    const m = ringMask(bits);
    for (let i = 0; i < n; i++) out[i] = out[i]! & m;
  }
  return out;
}

/** 2^bits - 1 as a uint32 (all ones for 32). */
export function ringMask(bits: number): number {
  return bits >= 32 ? 0xffffffff : (2 ** bits - 1) >>> 0;
}

/** One mask to add (+1) or subtract (-1). */
export interface MaskTerm {
  seed: Uint8Array;
  sign: 1 | -1;
}
