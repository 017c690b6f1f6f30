/** Secure aggregation stage messages: plain objects with Uint8Array fields, and the zod schemas that check them. */
import { z } from 'zod';

/**
 * An agent's two fresh X25519 public keys for one round (cPk encrypts its share ciphertexts, sPk agrees pairwise
 * masks) and bCommit = SHA-256 of its self-mask seed b, so the coordinator can tell a correctly rebuilt b from one
 * spoiled by a wrong share (b is 256 random bits: the hash gives nothing away). Optional on the wire for agents that
 * predate it; without it a wrong b-share silently spoils the sum.
 */
export interface SecAggAdvertise {
  cPk: Uint8Array;
  sPk: Uint8Array;
  bCommit?: Uint8Array | undefined;
}

/** One agent of the round as its neighbors see it: x is its 1-based Shamir x-coordinate (unique in the round). */
export interface SecAggRosterEntry {
  id: string;
  x: number;
  cPk: Uint8Array;
  sPk: Uint8Array;
}

/** What the coordinator sends an agent after advertising: its own x and its neighbors' keys (O(k), not O(n)). */
export interface SecAggShareKeysRequest {
  x: number;
  neighbors: SecAggRosterEntry[];
}

/** One encrypted share bundle (nacl.box, pairwise key of sender's cSk and recipient's cPk). */
export interface SecAggCiphertext {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** Agent -> coordinator: one ciphertext per neighbor, addressed by id; the coordinator cannot read them. */
export interface SecAggShareKeys {
  shares: (SecAggCiphertext & { to: string })[];
}

/** Coordinator -> agent: the ciphertexts its neighbors addressed to it, with their sender. */
export interface SecAggRoutedShares {
  shares: (SecAggCiphertext & { from: string })[];
}

/** What receiveShares made of the routed ciphertexts: rejected ones failed nacl.box.open (tampered or forged). */
export interface SecAggShareReceipt {
  accepted: string[];
  rejected: string[];
}

/**
 * Agent -> coordinator: the masked vector, length = model length + 1 (last slot: the masked quantized weight), every
 * element < 2^bits. `rejected` repeats the receipt's rejected senders (usually empty) so the coordinator can drop them.
 */
export interface SecAggMaskedInput {
  y: Uint32Array;
  rejected: string[];
}

/**
 * Coordinator -> agent after the masked-input stage: the agent's neighbors (and itself) split into those whose masked
 * input is in the sum (reveal their self-mask share) and those that dropped (reveal their masking-key share).
 */
export interface SecAggUnmaskRequest {
  survivors: string[];
  dropped: string[];
}

export interface SecAggShareOf {
  owner: string;
  share: Uint8Array;
}

/** Agent -> coordinator: b-shares (self-mask seeds) of survivors and s-key shares of dropped agents, never both for one owner. */
export interface SecAggUnmask {
  bShares: SecAggShareOf[];
  sShares: SecAggShareOf[];
}

/** finalize()'s answer: the round's aggregate, or why it cannot be computed (data, not an exception). */
export type SecAggResult =
  | {
      ok: true;
      /** Weighted mean sum(w_i x_i) / sum(w_i) of the survivors' updates (the FedAvg aggregate). */
      mean: Float32Array;
      /** sum(w_i x_i) itself (for central DP noise or another normalisation). */
      weightedSum: Float32Array;
      /** sum(w_i) in the caller's weight units (example counts). */
      weightSum: number;
      survivors: string[];
      dropped: string[];
    }
  | { ok: false; reason: string; survivors: string[]; dropped: string[] };

// ---- zod schemas: accept Uint8Array (binary transports) or base64 strings (JSON payloads, see secaggToJson) ----

const ID = z.string().min(1).max(256);

/** Bytes as a Uint8Array or a base64 string; exact length when given. */
export function secaggBytes(len?: number, max = 1 << 16) {
  return z
    .union([z.instanceof(Uint8Array), z.string().max(Math.ceil(max / 3) * 4 + 4).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64')])
    .transform((v) => (typeof v === 'string' ? new Uint8Array(Buffer.from(v, 'base64')) : v))
    .refine((b) => (len === undefined ? b.length <= max : b.length === len), len === undefined ? `at most ${max} bytes` : `exactly ${len} bytes`);
}

const KEY = secaggBytes(32);
const NONCE = secaggBytes(24);
/** Share plaintext is ~100 bytes + ids; 4 KiB bounds a forged ciphertext. */
const CIPHERTEXT = secaggBytes(undefined, 4096);
/** Field elements (Shamir shares) are 33 bytes, see shamir.ts. */
const SHARE = secaggBytes(33);
const MAX_LIST = 1_000_000;

export const secaggAdvertiseSchema = z.object({ cPk: KEY, sPk: KEY, bCommit: secaggBytes(32).optional() });
export const secaggRosterEntrySchema = z.object({ id: ID, x: z.number().int().min(1).max(2 ** 31), cPk: KEY, sPk: KEY });
export const secaggShareKeysRequestSchema = z.object({ x: z.number().int().min(1).max(2 ** 31), neighbors: z.array(secaggRosterEntrySchema).max(MAX_LIST) });
export const secaggShareKeysSchema = z.object({ shares: z.array(z.object({ to: ID, nonce: NONCE, ciphertext: CIPHERTEXT })).max(MAX_LIST) });
export const secaggRoutedSharesSchema = z.object({ shares: z.array(z.object({ from: ID, nonce: NONCE, ciphertext: CIPHERTEXT })).max(MAX_LIST) });
export const secaggMaskedInputSchema = z.object({ y: z.instanceof(Uint32Array), rejected: z.array(ID).max(MAX_LIST).default([]) });
export const secaggUnmaskRequestSchema = z.object({ survivors: z.array(ID).max(MAX_LIST), dropped: z.array(ID).max(MAX_LIST) });
/** Agent -> coordinator right after opening its boxes: the senders whose box failed its MAC. */
export const secaggReportSchema = z.object({ rejected: z.array(ID).min(1).max(MAX_LIST) });
const SHARE_OF = z.object({ owner: ID, share: SHARE });
export const secaggUnmaskSchema = z.object({ bShares: z.array(SHARE_OF).max(MAX_LIST), sShares: z.array(SHARE_OF).max(MAX_LIST) });

/** JSON text of a stage message: Uint8Array fields become base64 strings (the schemas above read them back). */
export function secaggToJson(msg: unknown): string {
  return JSON.stringify(msg, (_k, v: unknown) => {
    if (v instanceof Uint32Array) throw new TypeError('secaggToJson: a masked vector goes as bytes (maskedToBytes), not JSON');
    if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    // JSON.stringify calls Buffer#toJSON before the replacer: turn its {type, data} back into base64.
    if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data))
      return Buffer.from((v as { data: number[] }).data).toString('base64');
    return v;
  });
}
