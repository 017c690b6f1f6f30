/** Shamir t-of-n secret sharing of 32-byte secrets over the prime field GF(2^256 + 297). */
import { randomBytes } from 'node:crypto';

/**
 * The smallest prime above 2^256 (Miller-Rabin, 20 bases), so every 32-byte secret is a field element as it is.
 * A prime field (not GF(2^8)) lets x-coordinates be the agents' 1-based indexes in the whole round (any n), so a
 * holder's x needs no per-neighborhood numbering. Shares are 33 bytes, big-endian.
 */
export const SHAMIR_PRIME = 2n ** 256n + 297n;
export const SHARE_BYTES = 33;

export interface ShamirShare {
  /** The holder's x-coordinate: a whole number >= 1, distinct among the shares of one secret. */
  x: number;
  /** f(x), SHARE_BYTES bytes big-endian. */
  y: Uint8Array;
}

const P = SHAMIR_PRIME;
const mod = (a: bigint): bigint => ((a % P) + P) % P;

function toBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return v;
}

function toBytes(v: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** a^-1 mod P (extended Euclid; P is prime and a != 0). */
function inverse(a: bigint): bigint {
  let [r0, r1] = [mod(a), P];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0);
}

function checkX(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isSafeInteger(x) || x < 1) throw new RangeError(`shamir: x-coordinate ${x} must be a whole number >= 1`);
    if (seen.has(x)) throw new RangeError(`shamir: x-coordinate ${x} appears twice`);
    seen.add(x);
  }
}

/**
 * Splits a 32-byte `secret` into one share per x in `xs`; any t of them rebuild it, t - 1 reveal nothing about it
 * (the t - 1 random coefficients are uniform in the field).
 */
export function shamirSplit(secret: Uint8Array, t: number, xs: readonly number[]): ShamirShare[] {
  if (secret.length !== 32) throw new RangeError(`shamir: secret must be 32 bytes, got ${secret.length}`);
  if (!Number.isInteger(t) || t < 1 || t > xs.length) throw new RangeError(`shamir: threshold ${t} must be 1..${xs.length} (the number of shares)`);
  checkX(xs);
  const coeffs = [toBig(secret)];
  // 40 random bytes reduced mod P: bias below 2^-60.
  for (let i = 1; i < t; i++) coeffs.push(toBig(randomBytes(40)) % P);
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coeffs.length - 1; i >= 0; i--) y = (y * bx + coeffs[i]!) % P;
    return { x, y: toBytes(y, SHARE_BYTES) };
  });
}

/**
 * Rebuilds the secret from at least t shares (the first t are used). Throws when fewer than t are given; with t
 * shares of different secrets or tampered shares it returns garbage, so callers check the result against a public
 * value (the coordinator compares a rebuilt key with the advertised public key).
 */
export function shamirCombine(shares: readonly ShamirShare[], t: number): Uint8Array {
  if (!Number.isInteger(t) || t < 1) throw new RangeError(`shamir: threshold ${t} must be a whole number >= 1`);
  if (shares.length < t) throw new RangeError(`shamir: ${shares.length} shares, need ${t}`);
  const use = shares.slice(0, t);
  checkX(use.map((s) => s.x));
  const xs = use.map((s) => BigInt(s.x));
  // Lagrange at 0: sum y_i * prod_{j != i} x_j / (x_j - x_i). The factors are small integers, so the products are
  // formed exactly and reduced once; the t denominators are inverted together (one inversion, Montgomery's trick).
  const nums: bigint[] = [];
  const dens: bigint[] = [];
  for (let i = 0; i < t; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < t; j++) {
      if (j === i) continue;
      num *= xs[j]!;
      den *= xs[j]! - xs[i]!;
    }
    nums.push(num % P);
    dens.push(mod(den));
  }
  const prefix: bigint[] = [1n];
  for (let i = 0; i < t; i++) prefix.push((prefix[i]! * dens[i]!) % P);
  let inv = inverse(prefix[t]!);
  const invDens: bigint[] = new Array<bigint>(t);
  for (let i = t - 1; i >= 0; i--) {
    invDens[i] = (inv * prefix[i]!) % P;
    inv = (inv * dens[i]!) % P;
  }
  let acc = 0n;
  for (let i = 0; i < t; i++) {
    const y = toBig(use[i]!.y);
    if (use[i]!.y.length !== SHARE_BYTES || y >= P) throw new RangeError(`shamir: share at x=${use[i]!.x} is not a field element`);
    acc = (acc + ((((y * nums[i]!) % P) * invDens[i]!) % P)) % P;
  }
  if (acc >= 2n ** 256n) return toBytes(acc & (2n ** 256n - 1n), 32); // not a 32-byte secret: wrong shares; caller detects
  return toBytes(acc, 32);
}
