/** The agent's side of one secure-aggregation round (Bonawitz et al. 2017 with SecAgg+ neighborhoods): a state machine. */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { SecAggError, ValidationError } from '../errors.js';
import { parseOrThrow } from '../schemas.js';
import { boxKey, decodeSharePlaintext, encodeSharePlaintext, maskSeed, x25519Private } from './keys.js';
import {
  secaggRoutedSharesSchema,
  secaggShareKeysRequestSchema,
  secaggUnmaskRequestSchema,
  type SecAggAdvertise,
  type SecAggMaskedInput,
  type SecAggRosterEntry,
  type SecAggRoutedShares,
  type SecAggShareKeys,
  type SecAggShareKeysRequest,
  type SecAggShareReceipt,
  type SecAggUnmask,
  type SecAggUnmaskRequest,
} from './messages.js';
import { checkParams, type SecAggParams } from './params.js';
import { applyMasks, applyMasksAsync } from './mask.js';
import { ringMask, type MaskTerm } from './prg.js';
import { quantizeInto, type Rounding } from './quantize.js';
import { shamirSplit } from './shamir.js';

type Stage = 'new' | 'advertised' | 'shared' | 'received' | 'masked' | 'unmasked';

/** +1 when `a` adds the pairwise mask with `b`, -1 when it subtracts it: the two signs cancel in the sum. */
export function pairSign(a: string, b: string): 1 | -1 {
  return a < b ? 1 : -1;
}

/**
 * One agent in one round. Call advertise, shareKeys, receiveShares, maskedInput, unmask in that order (each once);
 * an agent that stops anywhere simply counts as dropped. Secrets never leave the object except as Shamir shares
 * inside boxes for neighbors, and in unmask never both shares of one owner (the privacy rule: a self-mask share
 * reveals nothing unless the pairwise masks are also known, and vice versa).
 */
export class SecAggClient {
  readonly id: string;
  readonly params: SecAggParams;
  private stage: Stage = 'new';
  private readonly cKeys = nacl.box.keyPair();
  private readonly sKeys = nacl.box.keyPair();
  private readonly cPriv: KeyObject;
  private readonly sPriv: KeyObject;
  /** Self-mask seed b. */
  private readonly b = new Uint8Array(randomBytes(32));
  private neighbors = new Map<string, SecAggRosterEntry>();
  /** Shares this agent holds, by owner (itself included once shareKeys ran). */
  private readonly held = new Map<string, { b: Uint8Array; s: Uint8Array }>();
  /** Neighbors whose ciphertexts were routed to it: exactly the agents it exchanges pairwise masks with. */
  private partners: string[] = [];
  private rejected: string[] = [];
  /** nacl.box keys with each neighbor, agreed once in shareKeys and reused to open its ciphertext. */
  private readonly boxKeys = new Map<string, Uint8Array>();

  constructor(id: string, params: SecAggParams) {
    checkParams(params);
    this.id = id;
    this.params = params;
    this.cPriv = x25519Private(this.cKeys.secretKey);
    this.sPriv = x25519Private(this.sKeys.secretKey);
  }

  private step(from: Stage | Stage[], to: Stage, what: string): void {
    const ok = Array.isArray(from) ? from.includes(this.stage) : this.stage === from;
    if (!ok) throw new SecAggError(`secagg agent ${this.id}: ${what} cannot run at stage '${this.stage}' (each stage runs once, in order)`);
    this.stage = to;
  }

  /** Stage 0: the two fresh public keys for this round and the commitment to b. */
  advertise(): SecAggAdvertise {
    this.step('new', 'advertised', 'advertise');
    return { cPk: this.cKeys.publicKey, sPk: this.sKeys.publicKey, bCommit: new Uint8Array(createHash('sha256').update(this.b).digest()) };
  }

  /**
   * Stage 1: Shamir-shares the self-mask seed b and the masking secret key among itself and its neighbors (t of
   * k + 1), and boxes each neighbor's pair of shares with the key agreed from cSk and the neighbor's cPk.
   */
  shareKeys(request: SecAggShareKeysRequest): SecAggShareKeys {
    const req = parseOrThrow(secaggShareKeysRequestSchema, request, 'secagg share-keys request');
    const xs = new Set<number>([req.x]);
    for (const n of req.neighbors) {
      if (n.id === this.id) throw new ValidationError(`secagg share-keys request: neighbors lists the agent itself (${this.id})`);
      if (this.neighbors.has(n.id)) throw new ValidationError(`secagg share-keys request: neighbor ${n.id} appears twice`);
      if (xs.has(n.x)) throw new ValidationError(`secagg share-keys request: x ${n.x} of ${n.id} is not unique`);
      xs.add(n.x);
      this.neighbors.set(n.id, n);
    }
    if (req.neighbors.length + 1 < this.params.threshold)
      throw new ValidationError(`secagg share-keys request: ${req.neighbors.length} neighbors, need at least threshold - 1 = ${this.params.threshold - 1} to share secrets`);
    this.step('advertised', 'shared', 'shareKeys');
    const holders = [{ id: this.id, x: req.x }, ...req.neighbors];
    const t = this.params.threshold;
    const bShares = shamirSplit(this.b, t, holders.map((h) => h.x));
    const sShares = shamirSplit(this.sKeys.secretKey, t, holders.map((h) => h.x));
    this.held.set(this.id, { b: bShares[0]!.y, s: sShares[0]!.y });
    const shares = req.neighbors.map((n, i) => {
      const nonce = new Uint8Array(randomBytes(24));
      const plain = encodeSharePlaintext({ owner: this.id, holder: n.id, b: bShares[i + 1]!.y, s: sShares[i + 1]!.y });
      const key = boxKey(this.cPriv, n.cPk);
      this.boxKeys.set(n.id, key);
      return { to: n.id, nonce, ciphertext: nacl.box.after(plain, nonce, key) };
    });
    return { shares };
  }

  /**
   * Stage 2: opens the ciphertexts neighbors addressed to it. One that fails nacl.box.open's MAC (tampered, forged,
   * or boxed for someone else) is rejected: its sender's shares are not kept and the sender is reported to the
   * coordinator with the masked input. Every routed sender, rejected or not, is a mask partner: the coordinator
   * routed it, so it counts it as one, and masks never depend on the ciphertext's content.
   */
  receiveShares(routed: SecAggRoutedShares): SecAggShareReceipt {
    const msg = parseOrThrow(secaggRoutedSharesSchema, routed, 'secagg routed shares');
    this.step('shared', 'received', 'receiveShares');
    const accepted: string[] = [];
    const rejected: string[] = [];
    const seen = new Set<string>();
    for (const c of msg.shares) {
      const key = this.boxKeys.get(c.from);
      if (!key) throw new ValidationError(`secagg routed shares: ${c.from} is not a neighbor of ${this.id}`);
      if (seen.has(c.from)) throw new ValidationError(`secagg routed shares: two ciphertexts from ${c.from}`);
      seen.add(c.from);
      const opened = nacl.box.open.after(c.ciphertext, c.nonce, key);
      const plain = opened ? decodeSharePlaintext(opened) : undefined;
      if (!plain || plain.owner !== c.from || plain.holder !== this.id || plain.b.length !== 33 || plain.s.length !== 33) {
        rejected.push(c.from);
        continue;
      }
      this.held.set(c.from, { b: plain.b, s: plain.s });
      accepted.push(c.from);
    }
    this.partners = [...seen].sort();
    this.rejected = rejected.sort();
    return { accepted: accepted.sort(), rejected: this.rejected };
  }

  /**
   * Stage 3: y = q(weight * update | weight) + PRG(b) + sum over partners v of +-PRG(agree(sSk, sPk_v)) mod 2^bits,
   * length update.length + 1. `rounding` is for tests; agents keep the default (stochastic, unbiased).
   */
  maskedInput(update: Float32Array, weight: number, rounding: Rounding = 'stochastic'): SecAggMaskedInput {
    const { y, terms } = this.quantized(update, weight, rounding);
    applyMasks(y, terms);
    return this.reduced(y);
  }

  /** maskedInput with the k + 1 mask expansions on a worker thread (the agent's event loop keeps running). */
  async maskedInputAsync(update: Float32Array, weight: number, rounding: Rounding = 'stochastic'): Promise<SecAggMaskedInput> {
    const { y, terms } = this.quantized(update, weight, rounding);
    await applyMasksAsync(y, terms);
    return this.reduced(y);
  }

  private quantized(update: Float32Array, weight: number, rounding: Rounding): { y: Uint32Array; terms: MaskTerm[] } {
    this.step('received', 'masked', 'maskedInput');
    const y = new Uint32Array(update.length + 1);
    quantizeInto(y, update, weight, this.params, rounding);
    const terms: MaskTerm[] = [{ seed: this.b, sign: 1 }];
    for (const v of this.partners) terms.push({ seed: maskSeed(this.sPriv, this.neighbors.get(v)!.sPk), sign: pairSign(this.id, v) });
    return { y, terms };
  }

  private reduced(y: Uint32Array): SecAggMaskedInput {
    if (this.params.bits < 32) {
      const m = ringMask(this.params.bits);
      for (let i = 0; i < y.length; i++) y[i] = y[i]! & m;
    }
    return { y, rejected: [...this.rejected] };
  }

  /**
   * Stage 4: the b-share of each survivor and the s-key share of each dropped agent that it holds (owners it holds
   * nothing of are skipped). Refuses, revealing nothing, when one agent is named both survivor and dropped, and
   * answers once: a second request could name the other half.
   */
  unmask(request: SecAggUnmaskRequest): SecAggUnmask {
    const req = parseOrThrow(secaggUnmaskRequestSchema, request, 'secagg unmask request');
    const survivors = new Set(req.survivors);
    const both = req.dropped.filter((d) => survivors.has(d));
    if (both.length > 0)
      throw new SecAggError(`secagg agent ${this.id}: unmask request names ${both.join(', ')} both survivor and dropped; revealing both shares would expose that agent's input, so nothing is revealed`, 'privacy');
    this.step(['received', 'masked'], 'unmasked', 'unmask');
    const bShares = [...survivors].flatMap((o) => (this.held.has(o) ? [{ owner: o, share: this.held.get(o)!.b }] : []));
    const sShares = [...new Set(req.dropped)].flatMap((o) => (this.held.has(o) ? [{ owner: o, share: this.held.get(o)!.s }] : []));
    return { bShares, sShares };
  }
}
