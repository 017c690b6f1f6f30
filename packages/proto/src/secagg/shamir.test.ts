/** Shamir over GF(2^256 + 297): any t of n shares rebuild a 32-byte secret, fewer do not. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SHAMIR_PRIME, shamirCombine, shamirSplit, type ShamirShare } from './shamir.js';

function subsets<T>(a: T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (a.length < k) return [];
  const [h, ...rest] = a;
  return [...subsets(rest, k - 1).map((s) => [h!, ...s]), ...subsets(rest, k)];
}

describe('shamir', () => {
  it('rebuilds the secret from every subset of t of n shares, in any order', () => {
    const secret = new Uint8Array(randomBytes(32));
    const xs = [3, 7, 1, 12, 40, 41];
    const shares = shamirSplit(secret, 4, xs);
    const all = subsets(shares, 4);
    expect(all).toHaveLength(15);
    for (const s of all) {
      expect(Buffer.from(shamirCombine(s, 4)).equals(Buffer.from(secret))).toBe(true);
      expect(Buffer.from(shamirCombine([...s].reverse(), 4)).equals(Buffer.from(secret))).toBe(true);
    }
    // More than t shares: still the secret.
    expect(Buffer.from(shamirCombine(shares, 4))).toEqual(Buffer.from(secret));
  });

  it('handles secrets at the edges of 32 bytes and large x-coordinates (indexes of 10,000 agents)', () => {
    for (const secret of [new Uint8Array(32), new Uint8Array(32).fill(255)]) {
      const shares = shamirSplit(secret, 3, [9998, 9999, 10000, 1]);
      expect(Buffer.from(shamirCombine(shares.slice(1), 3))).toEqual(Buffer.from(secret));
    }
  });

  it('t - 1 shares do not rebuild it, and refuse to be combined as t', () => {
    const secret = new Uint8Array(randomBytes(32));
    const shares = shamirSplit(secret, 5, [1, 2, 3, 4, 5, 6, 7]);
    expect(() => shamirCombine(shares.slice(0, 4), 5)).toThrow(/4 shares, need 5/);
    for (const s of subsets(shares, 4)) expect(Buffer.from(shamirCombine(s, 4)).equals(Buffer.from(secret))).toBe(false);
  });

  it('t - 1 shares are consistent with any other secret (they reveal nothing)', () => {
    // For t = 2, one share y1 = s + a*x1 fits every secret s' with a' = (y1 - s') / x1: check that a share of s and
    // a chosen share fixing secret s' combine to s', i.e. the first share alone does not pin s.
    const s1 = new Uint8Array(randomBytes(32));
    const s2 = new Uint8Array(randomBytes(32));
    const [share] = shamirSplit(s1, 2, [5, 6]);
    const big = (b: Uint8Array) => b.reduce((v, x) => (v << 8n) | BigInt(x), 0n);
    const P = SHAMIR_PRIME;
    const y1 = big(share!.y);
    // line through (0, s2) and (5, y1): value at 9
    const slope = (((y1 - big(s2)) % P) + P) % P;
    const inv5 = modInverse(5n, P);
    const y9 = (big(s2) + ((slope * inv5) % P) * 9n) % P;
    const other: ShamirShare = { x: 9, y: toBytes(y9) };
    expect(Buffer.from(shamirCombine([share!, other], 2))).toEqual(Buffer.from(s2));
  });

  it('refuses duplicate or invalid x-coordinates and wrong secret sizes', () => {
    expect(() => shamirSplit(new Uint8Array(32), 2, [1, 1, 2])).toThrow(/appears twice/);
    expect(() => shamirSplit(new Uint8Array(32), 2, [0, 1])).toThrow(/>= 1/);
    expect(() => shamirSplit(new Uint8Array(31), 2, [1, 2])).toThrow(/32 bytes/);
    expect(() => shamirSplit(new Uint8Array(32), 3, [1, 2])).toThrow(/threshold 3/);
  });
});

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

function toBytes(v: bigint): Uint8Array {
  const out = new Uint8Array(33);
  for (let i = 32; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
